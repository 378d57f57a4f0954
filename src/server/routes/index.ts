/** Every route module, in mount order. Each file is one resource group; add a line for a new one. */
import type { ServerApp, ServerContext } from '../context.js';
import { register as audit } from './audit.js';
import { register as jobs } from './jobs.js';
import { register as metrics } from './metrics.js';
import { register as openapi } from './openapi.js';
import { register as overview } from './overview.js';
import { register as session } from './session.js';
import { register as tokens } from './tokens.js';
import { register as users } from './users.js';
import { register as repositories } from './repositories.js';
import { register as generations } from './generations.js';
import { register as exports } from './exports.js';
import { register as files } from './files.js';
import { register as preview } from './preview.js';
import { register as web } from './web.js';

export const ROUTES: readonly ((app: ServerApp, ctx: ServerContext) => void)[] = [
  session, overview, jobs, users, tokens, audit, metrics, openapi,
  repositories, generations, files, exports, preview, web,
];
