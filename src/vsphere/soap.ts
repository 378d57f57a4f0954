/**
 * SOAP over HTTPS to one vSphere endpoint: serializes the call, carries the session
 * cookie, and turns a SOAP fault into a VsphereFaultError named by its fault type.
 */
import type https from 'node:https';
import { IoError } from '../errors.js';
import { type MissingPrivilege, VsphereFaultError, describeMissing, missingPrivilegeOf } from './errors.js';
import { httpRequest } from './http.js';
import { type Fields, type MoRef, type XmlNode, childNs, parseXml, soapEnvelope, text, xsiType } from './xml.js';

export class SoapClient {
  /** `vmware_soap_session=…` once the server set it; datastore transfers send it too. */
  cookie: string | undefined;
  apiVersion = '7.0';

  constructor(readonly url: URL, readonly agent: https.Agent) {}

  /**
   * Calls `method` on `self` and returns its response element (whose `returnval` holds the
   * result); `namespace` is the method's (urn:internalvim25 for the internal API's).
   */
  async invoke(method: string, self: MoRef, params: Fields = {}, namespace?: string): Promise<XmlNode> {
    const headers: Record<string, string> = {
      'content-type': 'text/xml; charset=utf-8',
      soapaction: `urn:vim25/${this.apiVersion}`,
    };
    if (this.cookie) headers.cookie = this.cookie;
    const res = await httpRequest(this.agent, { method: 'POST', url: this.url, headers, body: soapEnvelope(method, self, params, namespace) });
    const setCookie = res.headers['set-cookie']?.find((c) => c.startsWith('vmware_soap_session='));
    if (setCookie) this.cookie = setCookie.split(';')[0];

    let body: XmlNode | undefined;
    try {
      body = childNs(childNs(parseXml(res.body.toString('utf8')), 'Envelope'), 'Body');
    } catch (err) {
      throw new IoError(`${method} on ${this.url.host}: the answer is not XML (HTTP ${res.status})`, { cause: err });
    }
    if (body === undefined) throw new IoError(`${method} on ${this.url.host}: HTTP ${res.status} without a SOAP body`);
    const fault = childNs(body, 'Fault');
    if (fault !== undefined) throw faultError(method, fault);
    const response = childNs(body, `${method}Response`);
    if (response === undefined) throw new IoError(`${method} on ${this.url.host}: the answer has no ${method}Response (HTTP ${res.status})`);
    return response;
  }
}

function faultError(method: string, fault: XmlNode): VsphereFaultError {
  const message = text(childNs(fault, 'faultstring')).trim();
  const detail = childNs(fault, 'detail');
  let type = 'SystemError';
  let missing: MissingPrivilege | undefined;
  if (detail !== undefined && typeof detail !== 'string') {
    for (const [k, v] of Object.entries(detail)) {
      if (k.startsWith('@') || k === '#text') continue;
      const node = Array.isArray(v) ? v[0] : v;
      type = xsiType(node) ?? k.replace(/^.*:/, '').replace(/Fault$/, '');
      if (type === 'NoPermission') missing = missingPrivilegeOf(node);
      break;
    }
  }
  const needs = missing ? ` (needs ${describeMissing(missing)})` : '';
  return new VsphereFaultError(`${method} failed: ${type}${message ? `: ${message}` : ''}${needs}`, type, missing ? { missing } : {});
}
