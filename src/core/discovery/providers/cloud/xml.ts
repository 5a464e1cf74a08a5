/**
 * A small XML reader for the EC2 Query API's answers: elements, text, the five named entities
 * and numeric character references, CDATA, comments and the XML declaration; attributes are
 * skipped (EC2 puts nothing in them but the namespace). Bounded: nesting depth and element
 * count, so a hostile answer cannot make it recurse or allocate without limit (the body size
 * is already capped by the HTTP call). No DTDs: a `<!DOCTYPE` is refused, so no entity
 * expansion is possible.
 */

export interface XmlElement {
  name: string;
  children: XmlElement[];
  /** Concatenated text directly inside this element. */
  text: string;
}

export const XML_DEPTH_MAX = 64;
export const XML_ELEMENTS_MAX = 500_000;

export class XmlError extends Error {}

const NAMED: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

function decodeEntities(text: string): string {
  return text.replace(/&(#x[0-9a-fA-F]+|#\d+|[a-z]+);/g, (whole, ref: string) => {
    if (ref.startsWith('#x')) return String.fromCodePoint(Number.parseInt(ref.slice(2), 16));
    if (ref.startsWith('#')) return String.fromCodePoint(Number.parseInt(ref.slice(1), 10));
    const named = NAMED[ref];
    if (named === undefined) throw new XmlError(`unknown entity ${whole}`);
    return named;
  });
}

/** Index of the `>` ending the tag opened at `from`, skipping quoted attribute values. */
function tagEnd(source: string, from: number): number {
  let quote: string | undefined;
  for (let i = from; i < source.length; i++) {
    const c = source[i];
    if (quote !== undefined) {
      if (c === quote) quote = undefined;
    } else if (c === '"' || c === "'") quote = c;
    else if (c === '>') return i;
  }
  return -1;
}

/** Parses a document and returns its root element. */
export function parseXml(source: string): XmlElement {
  const root: XmlElement = { name: '#document', children: [], text: '' };
  const stack: XmlElement[] = [root];
  let elements = 0;
  let i = 0;
  while (i < source.length) {
    const lt = source.indexOf('<', i);
    const top = stack[stack.length - 1]!;
    if (lt < 0) {
      top.text += decodeEntities(source.slice(i));
      break;
    }
    if (lt > i) top.text += decodeEntities(source.slice(i, lt));
    if (source.startsWith('<?', lt)) {
      const end = source.indexOf('?>', lt);
      if (end < 0) throw new XmlError('unterminated processing instruction');
      i = end + 2;
    } else if (source.startsWith('<!--', lt)) {
      const end = source.indexOf('-->', lt);
      if (end < 0) throw new XmlError('unterminated comment');
      i = end + 3;
    } else if (source.startsWith('<![CDATA[', lt)) {
      const end = source.indexOf(']]>', lt);
      if (end < 0) throw new XmlError('unterminated CDATA');
      top.text += source.slice(lt + 9, end);
      i = end + 3;
    } else if (source.startsWith('<!', lt)) {
      throw new XmlError('DTDs are not accepted');
    } else if (source.startsWith('</', lt)) {
      const end = source.indexOf('>', lt);
      if (end < 0) throw new XmlError('unterminated end tag');
      const name = source.slice(lt + 2, end).trim();
      if (stack.length <= 1 || top.name !== name) {
        throw new XmlError(`</${name}> does not close <${top.name}>`);
      }
      stack.pop();
      i = end + 1;
    } else {
      const end = tagEnd(source, lt);
      if (end < 0) throw new XmlError('unterminated start tag');
      const selfClosing = source[end - 1] === '/';
      const inner = source.slice(lt + 1, selfClosing ? end - 1 : end);
      const name = /^[^\s/>]+/.exec(inner)?.[0];
      if (name === undefined) throw new XmlError('a tag without a name');
      if (++elements > XML_ELEMENTS_MAX)
        throw new XmlError(`more than ${XML_ELEMENTS_MAX} elements`);
      const element: XmlElement = { name, children: [], text: '' };
      top.children.push(element);
      if (!selfClosing) {
        if (stack.length > XML_DEPTH_MAX) throw new XmlError(`nested deeper than ${XML_DEPTH_MAX}`);
        stack.push(element);
      }
      i = end + 1;
    }
  }
  if (stack.length !== 1) throw new XmlError(`<${stack[stack.length - 1]!.name}> is not closed`);
  const [document] = root.children;
  if (document === undefined || root.children.length !== 1) {
    throw new XmlError('not one root element');
  }
  return document;
}

/** The first child named `name`, if any. */
export function child(element: XmlElement | undefined, name: string): XmlElement | undefined {
  return element?.children.find((c) => c.name === name);
}

/** The `<item>` children of the child named `name` (EC2's list shape). */
export function items(element: XmlElement | undefined, name: string): XmlElement[] {
  return child(element, name)?.children.filter((c) => c.name === 'item') ?? [];
}

/** The trimmed text of the path of children, or undefined when a step is missing or empty. */
export function textAt(element: XmlElement | undefined, ...path: string[]): string | undefined {
  let at = element;
  for (const name of path) at = child(at, name);
  const text = at?.text.trim();
  return text === undefined || text === '' ? undefined : text;
}
