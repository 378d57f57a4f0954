/**
 * Buffers for read replies, by size class (powers of two from 4 KiB), reused once the
 * socket has sent them: a busy export answers thousands of reads a second, and a fresh
 * buffer for each is garbage for the collector to catch up with. At most KEPT_BYTES are
 * kept.
 */
export class ReplyBuffers {
  private static readonly KEPT_BYTES = 16 * 1024 * 1024;
  private readonly free = new Map<number, Buffer[]>();
  private kept = 0;

  take(n: number): { buf: Buffer; give: () => void } {
    const size = Math.max(4096, 2 ** Math.ceil(Math.log2(Math.max(1, n))));
    const reused = this.free.get(size)?.pop();
    if (reused) this.kept -= size;
    const whole = reused ?? Buffer.allocUnsafeSlow(size);
    let given = false;
    return {
      buf: whole.subarray(0, n),
      give: () => {
        if (given || this.kept + size > ReplyBuffers.KEPT_BYTES) return;
        given = true;
        const l = this.free.get(size) ?? [];
        l.push(whole);
        this.free.set(size, l);
        this.kept += size;
      },
    };
  }
}
