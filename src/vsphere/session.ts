/**
 * One API session with a vCenter: service content, login, a keep-alive, and a fresh
 * login when the server answers NotAuthenticated (sessions expire after idle time,
 * or are ended by an administrator) — the call is then repeated once.
 */
import type https from 'node:https';
import { InputError } from '../errors.js';
import { type MissingPrivilege, VsphereFaultError, describeMissing, faultOf } from './errors.js';
import { SoapClient } from './soap.js';
import { taskStallMs } from './task-stall.js';
import { type TlsPolicy, agentFor } from './tls.js';
import { type Fields, MoRef, type XmlNode, at, child, moRefOf, textAt } from './xml.js';

export interface ServiceContent {
  readonly rootFolder: MoRef;
  readonly propertyCollector: MoRef;
  readonly viewManager: MoRef;
  readonly sessionManager: MoRef;
  readonly searchIndex: MoRef;
  /** Absent on endpoints without one. */
  readonly authorizationManager?: MoRef;
  readonly apiVersion: string;
  readonly product: string;
}

export interface SessionOptions {
  /** https://HOST[:PORT][/sdk]; a bare host name means https://HOST/sdk. */
  readonly url: string;
  readonly user: string;
  readonly password: string;
  readonly tls: TlsPolicy;
  /** How often to touch the session while idle (default 5 minutes). */
  readonly keepAliveMs?: number;
}

export function sdkUrl(input: string): URL {
  let url: URL;
  try {
    url = new URL(/^[a-z]+:\/\//i.test(input) ? input : `https://${input}`);
  } catch {
    throw new InputError(`vCenter URL ${JSON.stringify(input)} is invalid: use https://HOST[/sdk]`);
  }
  if (url.protocol !== 'https:') throw new InputError(`vCenter URL ${JSON.stringify(input)} must use https`);
  if (url.username || url.password) throw new InputError('the vCenter URL must not carry credentials: use --user and --password-file');
  if (url.pathname === '/' || url.pathname === '') url.pathname = '/sdk';
  return url;
}

const SERVICE_INSTANCE = new MoRef('ServiceInstance', 'ServiceInstance');

export class VsphereSession {
  private relogin: Promise<void> | undefined;
  private keepAlive: NodeJS.Timeout | undefined;
  private closed = false;

  private constructor(
    private readonly soap: SoapClient,
    private readonly agent: https.Agent,
    readonly content: ServiceContent,
    private readonly user: string,
    private readonly password: string,
  ) {}

  static async connect(opts: SessionOptions): Promise<VsphereSession> {
    const url = sdkUrl(opts.url);
    taskStallMs(); // a bad VMBKP_TASK_STALL_TIMEOUT fails before anything is done, not at the first task
    const agent = agentFor(opts.tls);
    const soap = new SoapClient(url, agent);
    try {
      const res = await soap.invoke('RetrieveServiceContent', SERVICE_INSTANCE);
      const content = parseServiceContent(child(res, 'returnval'));
      soap.apiVersion = content.apiVersion;
      const session = new VsphereSession(soap, agent, content, opts.user, opts.password);
      await session.login();
      session.keepAlive = setInterval(() => { void session.call('CurrentTime', SERVICE_INSTANCE).catch(() => {}); }, opts.keepAliveMs ?? 300_000);
      session.keepAlive.unref();
      return session;
    } catch (err) {
      agent.destroy();
      throw err;
    }
  }

  get host(): string { return this.soap.url.host; }
  get url(): URL { return this.soap.url; }
  /** The session cookie, for datastore transfers (`/folder`). */
  get cookie(): string | undefined { return this.soap.cookie; }
  get httpsAgent(): https.Agent { return this.agent; }

  private async login(): Promise<void> {
    try {
      await this.soap.invoke('Login', this.content.sessionManager, { userName: this.user, password: this.password });
    } catch (err) {
      if (faultOf(err) === 'InvalidLogin') {
        throw new VsphereFaultError(`login to ${this.host} as ${this.user} failed: wrong user name or password`, 'InvalidLogin', { cause: err });
      }
      throw err;
    }
  }

  /** The user the session is logged in as. */
  get userName(): string { return this.user; }

  /**
   * Calls a method; a NotAuthenticated answer triggers one fresh login and one retry.
   * A NoPermission answer becomes one line naming the user, the call, the privilege and its object.
   */
  async call(method: string, self: MoRef, params: Fields = {}, namespace?: string): Promise<XmlNode> {
    try {
      return await this.callOnce(method, self, params, namespace);
    } catch (err) {
      if (err instanceof VsphereFaultError && err.fault === 'NoPermission' && err.missing) throw await this.refusal(`call ${method}`, err.missing, err);
      throw err;
    }
  }

  private async callOnce(method: string, self: MoRef, params: Fields, namespace?: string): Promise<XmlNode> {
    try {
      return await this.soap.invoke(method, self, params, namespace);
    } catch (err) {
      if (faultOf(err) !== 'NotAuthenticated' || this.closed) throw err;
      this.relogin ??= this.login().finally(() => { this.relogin = undefined; });
      await this.relogin;
      return await this.soap.invoke(method, self, params, namespace);
    }
  }

  /** "user X may not call M on HOST: it needs privilege P on VirtualMachine web01 (vm-42)", the object named when it can be read. */
  async refusal(what: string, missing: MissingPrivilege, cause?: unknown): Promise<VsphereFaultError> {
    let name: string | undefined;
    if (missing.object) {
      // Every role holds System.Read, so the name can be read; if not, the moref says it.
      name = await this.soap.invoke('RetrievePropertiesEx', this.content.propertyCollector, {
        specSet: { propSet: { type: missing.object.type, pathSet: ['name'] }, objectSet: { obj: missing.object, skip: false } },
        options: {},
      }).then((res) => textAt(res, 'returnval.objects.propSet.val'), () => undefined);
    }
    return new VsphereFaultError(`user ${this.user} may not ${what} on ${this.host}: it needs ${describeMissing(missing, name)}`,
      'NoPermission', { cause, missing });
  }

  /** Re-establishes the session if the server dropped it (used before datastore transfers). */
  async ensureLoggedIn(): Promise<void> {
    await this.call('CurrentTime', SERVICE_INSTANCE);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.keepAlive);
    try {
      await this.soap.invoke('Logout', this.content.sessionManager);
    } catch {
      // Logging out is a courtesy: the session times out on the server anyway.
    } finally {
      this.agent.destroy();
    }
  }
}

function optionalRef(rv: XmlNode | undefined, name: 'authorizationManager'): { authorizationManager?: MoRef } {
  const r = moRefOf(child(rv, name));
  return r ? { [name]: r } : {};
}

function parseServiceContent(rv: XmlNode | undefined): ServiceContent {
  const ref = (name: string): MoRef => {
    const r = moRefOf(child(rv, name));
    if (!r) throw new VsphereFaultError(`the service content has no ${name}: is this a vSphere endpoint?`, 'InvalidResponse');
    return r;
  };
  return {
    rootFolder: ref('rootFolder'),
    propertyCollector: ref('propertyCollector'),
    viewManager: ref('viewManager'),
    sessionManager: ref('sessionManager'),
    searchIndex: ref('searchIndex'),
    ...optionalRef(rv, 'authorizationManager'),
    apiVersion: textAt(at(rv, 'about'), 'apiVersion') ?? '7.0',
    product: textAt(at(rv, 'about'), 'fullName') ?? 'vSphere',
  };
}
