/**
 * The folder tree of a SAFE product, as the download host's Nodes API walks it:
 * `Products(<Id>)/Nodes(<SAFE>)/Nodes(GRANULE)/Nodes(<granule>)/.../Nodes(<file>)`.
 *
 * Listing shape (documentation.dataspace.copernicus.eu/APIs/OData.html "Listing product nodes",
 * fixture `cdse_docs_nodes_listing_S2_L1C_root.json`): `{"result": [{Id, Name, ContentLength,
 * ChildrenNumber, Nodes: {uri}}]}` where `Id` equals `Name`, folders have `ContentLength` 0, and
 * `Nodes.uri` is the child's own listing URL. No paging.
 */

/** A file or folder of a SAFE product. */
export interface TreeNode {
  readonly name: string;
  /** Size in bytes (files); 0 for folders. */
  readonly size: number;
  /** Children by name (folders only). */
  readonly children?: Map<string, TreeNode>;
}

/** One entry of a Nodes listing (`result[]`). */
export interface NodeListingEntry {
  Id: string;
  Name: string;
  /** Bytes; 0 for folders. */
  ContentLength: number;
  ChildrenNumber: number;
  Nodes: { uri: string };
}

/**
 * Build the tree of `safeName` from SAFE-relative file paths (`GRANULE/.../x.jp2`).
 * Children are listed in name order.
 */
export function buildTree(safeName: string, files: ReadonlyArray<{ path: string; size: number }>): TreeNode {
  const root: TreeNode = { name: safeName, size: 0, children: new Map() };
  for (const f of files) {
    const parts = f.path.split('/');
    let dir = root;
    for (const [i, part] of parts.entries()) {
      const last = i === parts.length - 1;
      let next = dir.children!.get(part);
      if (!next) {
        next = last ? { name: part, size: f.size } : { name: part, size: 0, children: new Map() };
        dir.children!.set(part, next);
      }
      dir = next;
    }
  }
  sortTree(root);
  return root;
}

function sortTree(node: TreeNode): void {
  if (!node.children) return;
  const sorted = [...node.children.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  node.children.clear();
  for (const [k, v] of sorted) {
    node.children.set(k, v);
    sortTree(v);
  }
}

/** The node at `segments` below `root` (`[]` is the root itself), or `undefined`. */
export function resolveNode(root: TreeNode, segments: readonly string[]): TreeNode | undefined {
  let node: TreeNode | undefined = root;
  for (const s of segments) {
    node = node.children?.get(s);
    if (!node) return undefined;
  }
  return node;
}

/** The listing entry of `node`, whose own URL (without `/Nodes`) is `nodeUrl`. */
export function listingEntry(node: TreeNode, nodeUrl: string): NodeListingEntry {
  return {
    Id: node.name,
    Name: node.name,
    ContentLength: node.children ? 0 : node.size,
    ChildrenNumber: node.children?.size ?? 0,
    Nodes: { uri: `${nodeUrl}/Nodes` },
  };
}
