/**
 * The receiving half of the hand-written 4-byte length framing a Node developer writes
 * over `net`: one loop over each chunk, each message to a callback as a Buffer, a
 * `subarray` of the chunk when it lies inside it, one copy only when it spans chunks, a
 * partial header kept across chunks. The message is the whole frame, header included, as
 * kcm delivers it.
 */
export class FrameReader {
  /** Header bytes of a frame whose header spans chunks. */
  private readonly head = Buffer.allocUnsafe(4);
  private headLen = 0;
  /** The frame being filled when it spans chunks. */
  private body: Buffer | undefined = undefined;
  private bodyLen = 0;

  constructor(private readonly onMessage: (message: Buffer) => void) {}

  push(chunk: Buffer): void {
    const end = chunk.length;
    let pos = 0;
    if (this.body !== undefined) {
      const body = this.body;
      const take = Math.min(body.length - this.bodyLen, end);
      chunk.copy(body, this.bodyLen, 0, take);
      this.bodyLen += take;
      pos = take;
      if (this.bodyLen < body.length) return;
      this.body = undefined;
      this.onMessage(body);
    } else if (this.headLen > 0) {
      const take = Math.min(4 - this.headLen, end);
      chunk.copy(this.head, this.headLen, 0, take);
      this.headLen += take;
      pos = take;
      if (this.headLen < 4) return;
      this.headLen = 0;
      const len = this.head.readUInt32BE(0) + 4;
      const body = Buffer.allocUnsafe(len);
      this.head.copy(body, 0);
      const rest = Math.min(len - 4, end - pos);
      chunk.copy(body, 4, pos, pos + rest);
      pos += rest;
      if (4 + rest < len) {
        this.body = body;
        this.bodyLen = 4 + rest;
        return;
      }
      this.onMessage(body);
    }
    while (end - pos >= 4) {
      const len = chunk.readUInt32BE(pos) + 4;
      if (end - pos < len) {
        const body = Buffer.allocUnsafe(len);
        chunk.copy(body, 0, pos, end);
        this.body = body;
        this.bodyLen = end - pos;
        return;
      }
      this.onMessage(chunk.subarray(pos, pos + len));
      pos += len;
    }
    if (pos < end) {
      chunk.copy(this.head, 0, pos, end);
      this.headLen = end - pos;
    }
  }
}
