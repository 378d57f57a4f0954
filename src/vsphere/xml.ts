/**
 * The XML side of vSphere's SOAP API: writing request bodies from plain values, and
 * reading responses into a generic tree with small typed accessors. The tree keeps
 * attributes under "@name" keys (so "@xsi:type" survives) and text under "#text".
 */
import { createRequire } from 'node:module';

/** A managed object reference: `<name type="VirtualMachine">vm-42</name>`. */
export class MoRef {
  constructor(readonly type: string, readonly value: string) {}
  toString(): string { return `${this.type}:${this.value}`; }
}

/** A value whose XML element carries `xsi:type`, for fields declared as a base type. */
export class Typed {
  constructor(readonly xsiType: string, readonly fields: Fields) {}
}

/** Text in an element declared as xsd:anyType (an OptionValue's value): it needs its xsi:type. */
export class TypedText {
  constructor(readonly xsiType: string, readonly text: string) {}
}

export type Value = string | number | boolean | MoRef | Typed | TypedText | Fields | readonly Value[] | undefined;
/** Element content in schema order: vSphere checks the order of a sequence. */
export interface Fields { readonly [name: string]: Value }

export function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);
}

function writeValue(name: string, v: Value, out: string[]): void {
  if (v === undefined) return;
  if (Array.isArray(v)) {
    for (const item of v as readonly Value[]) writeValue(name, item, out);
  } else if (v instanceof MoRef) {
    out.push(`<${name} type="${escapeXml(v.type)}">${escapeXml(v.value)}</${name}>`);
  } else if (v instanceof TypedText) {
    out.push(`<${name} xsi:type="${escapeXml(v.xsiType)}">${escapeXml(v.text)}</${name}>`);
  } else if (v instanceof Typed) {
    out.push(`<${name} xsi:type="${escapeXml(v.xsiType)}">`);
    writeFields(v.fields, out);
    out.push(`</${name}>`);
  } else if (typeof v === 'object') {
    out.push(`<${name}>`);
    writeFields(v as Fields, out);
    out.push(`</${name}>`);
  } else {
    out.push(`<${name}>${escapeXml(String(v))}</${name}>`);
  }
}

function writeFields(fields: Fields, out: string[]): void {
  for (const [k, v] of Object.entries(fields)) writeValue(k, v, out);
}

/** A whole SOAP request for `method` on `self`. */
export function soapEnvelope(method: string, self: MoRef, params: Fields, namespace = 'urn:vim25'): string {
  const out: string[] = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">',
    `<soapenv:Body><${method} xmlns="${namespace}">`,
  ];
  writeValue('_this', self, out);
  writeFields(params, out);
  out.push(`</${method}></soapenv:Body></soapenv:Envelope>`);
  return out.join('');
}

/** A parsed element: attributes as "@name", text as "#text", children by tag name. */
export type XmlNode = string | XmlElement;
export interface XmlElement { readonly [key: string]: XmlNode | XmlNode[] | undefined }

/** The parser, made on first use: commands that never talk to vSphere do not load it. */
let parser: import('fast-xml-parser').XMLParser | undefined;

function xmlParser(): import('fast-xml-parser').XMLParser {
  if (parser) return parser;
  // Its CommonJS build: one file, where the ES module build is a dozen (~50 ms more to load).
  const { XMLParser } = (createRequire(import.meta.url) as (id: 'fast-xml-parser') => typeof import('fast-xml-parser'))('fast-xml-parser');
  parser = new XMLParser({
    ignoreAttributes: false,
    attributeNamePrefix: '@',
    parseTagValue: false,
    parseAttributeValue: false,
    trimValues: false,
    processEntities: true,
    // Also numeric character references ("&#39;" in a task's localizedMessage): XML allows them anywhere.
    htmlEntities: true,
  });
  return parser;
}

export function parseXml(text: string): XmlElement {
  return xmlParser().parse(text) as XmlElement;
}

/** The element under `name` with any namespace prefix ("soapenv:Body" matches "Body"). */
export function childNs(node: XmlNode | undefined, name: string): XmlNode | undefined {
  if (node === undefined || typeof node === 'string') return undefined;
  for (const [k, v] of Object.entries(node)) {
    if (k === name || k.endsWith(`:${name}`)) return Array.isArray(v) ? v[0] : v;
  }
  return undefined;
}

/** All child elements named `name` (vSphere's arrays are repeated elements: one looks like a scalar). */
export function children(node: XmlNode | undefined, name: string): XmlNode[] {
  if (node === undefined || typeof node === 'string') return [];
  const v = node[name];
  if (v === undefined) return [];
  return Array.isArray(v) ? v : [v];
}

export function child(node: XmlNode | undefined, name: string): XmlNode | undefined {
  return children(node, name)[0];
}

/** Follows a dotted path of child names. */
export function at(node: XmlNode | undefined, path: string): XmlNode | undefined {
  let cur = node;
  for (const part of path.split('.')) cur = child(cur, part);
  return cur;
}

export function text(node: XmlNode | undefined): string {
  if (node === undefined) return '';
  if (typeof node === 'string') return node;
  const t = node['#text'];
  return typeof t === 'string' ? t : '';
}

export function textAt(node: XmlNode | undefined, path: string): string | undefined {
  const n = at(node, path);
  return n === undefined ? undefined : text(n);
}

export function numberAt(node: XmlNode | undefined, path: string): number | undefined {
  const t = textAt(node, path);
  if (t === undefined || t === '') return undefined;
  const n = Number(t);
  return Number.isFinite(n) ? n : undefined;
}

export function boolAt(node: XmlNode | undefined, path: string): boolean | undefined {
  const t = textAt(node, path);
  return t === undefined ? undefined : t === 'true';
}

export function xsiType(node: XmlNode | undefined): string | undefined {
  if (node === undefined || typeof node === 'string') return undefined;
  // The prefix bound to XMLSchema-instance varies by server ("xsi", "XMLSchema-instance").
  for (const [k, v] of Object.entries(node)) {
    if (k.startsWith('@') && k.endsWith(':type') && typeof v === 'string') return v.replace(/^.*:/, '');
  }
  return undefined;
}

export function moRefOf(node: XmlNode | undefined): MoRef | undefined {
  if (node === undefined || typeof node === 'string') return undefined;
  const type = node['@type'];
  return typeof type === 'string' ? new MoRef(type, text(node)) : undefined;
}
