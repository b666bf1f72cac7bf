/**
 * A deliberately small XML well-formedness check for the SVG tests: every tag is opened and closed in
 * order, every attribute is name="value" without raw < or &, and text holds no raw < or stray &.
 * Returns the element names in document order (for counting), or throws naming the first problem.
 */
export function checkWellFormedXml(xml: string): string[] {
  const names: string[] = [];
  const stack: string[] = [];
  const token = /<[^<>]*>|[^<]+/g;
  const entity = /&(amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);/g;
  const text = (s: string, where: string) => {
    if (s.includes('<') || s.replace(entity, '').includes('&')) throw new Error(`unescaped < or & in ${where}: ${s}`);
  };
  let consumed = 0;
  for (const match of xml.matchAll(token)) {
    if (match.index !== consumed) throw new Error(`stray '<' at offset ${consumed}`);
    consumed += match[0].length;
    const t = match[0];
    if (!t.startsWith('<')) {
      if (stack.length === 0 && t.trim() !== '') throw new Error(`text outside the root element: ${t.trim()}`);
      text(t, 'text');
      continue;
    }
    const close = /^<\/([A-Za-z][\w:.-]*)\s*>$/.exec(t);
    if (close) {
      const open = stack.pop();
      if (open !== close[1]) throw new Error(`</${close[1]}> closes <${open}>`);
      continue;
    }
    const tag = /^<([A-Za-z][\w:.-]*)((?:\s+[A-Za-z][\w:.-]*="[^"]*")*)\s*(\/?)>$/.exec(t);
    if (!tag) throw new Error(`malformed tag: ${t}`);
    if (stack.length === 0 && names.length > 0) throw new Error(`second root element <${tag[1]}>`);
    for (const attr of tag[2].matchAll(/="([^"]*)"/g)) text(attr[1], `an attribute of <${tag[1]}>`);
    names.push(tag[1]);
    if (tag[3] !== '/') stack.push(tag[1]);
  }
  if (consumed !== xml.length) throw new Error(`unterminated tag at offset ${consumed}`);
  if (stack.length > 0) throw new Error(`unclosed <${stack.join('>, <')}>`);
  if (names.length === 0) throw new Error('no elements');
  return names;
}
