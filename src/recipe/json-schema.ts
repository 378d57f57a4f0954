/**
 * The recipe's JSON Schema (draft 2020-12), for editors and other tools. Generated from the
 * zod schemas so the two cannot disagree; schema/recipe.schema.json is this, written out,
 * and a test fails when the file is stale.
 */
import { z } from 'zod';
import { recipeSchema } from './schema.js';

export function recipeJsonSchema(): Record<string, unknown> {
  // io 'input': what a person writes (defaults make keys optional; bandwidth is the text).
  const generated = z.toJSONSchema(recipeSchema, { target: 'draft-2020-12', io: 'input' });
  const { $schema, ...rest } = generated;
  return { $schema, title: 'vmbkp recipe', ...rest };
}
