// Microphone capture: float frames at the AudioContext's rate (24 kHz) → PCM16 chunks of 40 ms.
class Capture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.chunk = new Int16Array(960);
    this.filled = 0;
  }
  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (channel) {
      for (let i = 0; i < channel.length; i++) {
        const s = Math.max(-1, Math.min(1, channel[i]));
        this.chunk[this.filled++] = s < 0 ? s * 0x8000 : s * 0x7fff;
        if (this.filled === this.chunk.length) {
          this.port.postMessage(this.chunk.buffer, [this.chunk.buffer]);
          this.chunk = new Int16Array(960);
          this.filled = 0;
        }
      }
    }
    return true;
  }
}
registerProcessor('capture', Capture);
