/** Which line of a YAML document a value path points at, so messages can send people there. */
import { createRequire } from 'node:module';
import type { Document, LineCounter } from 'yaml';

/**
 * The line of the value at `path`: a scalar's own line; a mapping's or list's key line
 * ("policy:"); a list item's line. Where the path leaves the document (a missing key), the
 * line of the deepest mapping it reached: the parent of the missing key. With `atKey`, the
 * line of the last key itself.
 */
export function lineOf(doc: Document, lc: LineCounter, path: readonly PropertyKey[], atKey = false): number {
  // yaml itself is loaded by whoever parsed `doc`: required here, not imported, so that a
  // module importing lineOf (the config file's) does not load the parser for runs without a file.
  const { isAlias, isMap, isNode, isScalar, isSeq } = (createRequire(import.meta.url) as (id: 'yaml') => typeof import('yaml'))('yaml');
  let node: unknown = doc.contents;
  let offset = isNode(node) ? (node.range?.[0] ?? 0) : 0;
  for (const [i, seg] of path.entries()) {
    if (isAlias(node)) node = node.resolve(doc);
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(seg));
      if (!pair || !isScalar(pair.key)) break;
      const keyAt = pair.key.range?.[0] ?? offset;
      node = pair.value;
      offset = atKey && i === path.length - 1 ? keyAt : isScalar(node) ? (node.range?.[0] ?? keyAt) : keyAt;
    } else if (isSeq(node) && typeof seg === 'number') {
      const item: unknown = node.items[seg];
      if (!isNode(item)) break;
      node = item;
      offset = item.range?.[0] ?? offset;
    } else {
      break;
    }
  }
  return lc.linePos(offset).line;
}
