/** VMBKP_TASK_STALL_TIMEOUT: seconds or a number with s, m or h; anything else is a usage error. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InputError } from '../src/errors.js';
import { formatStall, parseStall, taskStallMs } from '../src/vsphere/task-stall.js';

describe('task stall timeout', () => {
  it('reads seconds, minutes and hours; defaults to an hour', () => {
    assert.equal(parseStall('90'), 90_000);
    assert.equal(parseStall('1.5'), 1500);
    assert.equal(parseStall('45m'), 2_700_000);
    assert.equal(parseStall('2H'), 7_200_000);
    assert.equal(taskStallMs({}), 3_600_000);
    assert.equal(taskStallMs({ VMBKP_TASK_STALL_TIMEOUT: '' }), 3_600_000);
    assert.equal(taskStallMs({ VMBKP_TASK_STALL_TIMEOUT: '10s' }), 10_000);
  });

  it('refuses what is not a positive duration, naming the variable', () => {
    for (const bad of ['0', '-5', 'soon', '5d', '1h30m']) {
      assert.throws(() => parseStall(bad), (err: unknown) => err instanceof InputError && /VMBKP_TASK_STALL_TIMEOUT=.* is not a duration/.test(String(err)), bad);
    }
  });

  it('formats the timeout as it was most likely given', () => {
    assert.equal(formatStall(3_600_000), '1h');
    assert.equal(formatStall(2_700_000), '45m');
    assert.equal(formatStall(1500), '1.5s');
  });
});
