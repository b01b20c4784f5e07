// The browser side of the conformance tests: Twilio's own SDK, driven from Python through
// window.phone, with every event recorded (name, arguments, ms since load) in window.log.
"use strict";

const t0 = performance.now();
window.log = [];

function record(source, name, args) {
  const plain = args.map((a) => {
    if (a && typeof a === "object" && "code" in a) {
      const original = a.originalError || {};
      return { code: a.code, message: a.message, originalCode: original.code };
    }
    if (a && typeof a === "object" && a.parameters) return { call: true };
    if (a && typeof a === "object" && "codecName" in a) return { codecName: a.codecName };
    return a;
  });
  window.log.push({ source, name, args: plain, at: performance.now() - t0 });
}

const CALL_EVENTS = ["accept", "cancel", "disconnect", "error", "messageReceived", "messageSent",
  "mute", "reconnected", "reconnecting", "reject", "ringing", "sample", "warning",
  "warning-cleared"];
const DEVICE_EVENTS = ["registered", "registering", "unregistered", "error", "incoming",
  "tokenWillExpire", "destroyed"];

window.phone = {
  device: null,
  call: null,

  setup(token, chunderw, options) {
    const device = new Twilio.Device(token, Object.assign({
      chunderw,
      publishEvents: false,  // no Insights traffic: everything stays on 127.0.0.1
      logLevel: "warn",
    }, options || {}));
    // The SDK's ringtones would be fetched from Twilio's servers: keep them silent.
    device.audio.incoming(false);
    device.audio.outgoing(false);
    device.audio.disconnect(false);
    for (const name of DEVICE_EVENTS) {
      device.on(name, (...args) => {
        record("device", name, args);
        if (name === "incoming") this.watch(args[0]);
      });
    }
    this.device = device;
  },

  watch(call) {
    this.call = call;
    for (const name of CALL_EVENTS) call.on(name, (...args) => record("call", name, args));
  },

  async register() { await this.device.register(); },
  async unregister() { await this.device.unregister(); },
  async connect(params) { this.watch(await this.device.connect({ params })); },
  accept() { this.call.accept(); },
  reject() { this.call.reject(); },
  ignore() { this.call.ignore(); },
  disconnect() { this.call.disconnect(); },
  mute(should) { this.call.mute(should); },
  sendDigits(digits) { this.call.sendDigits(digits); },
  sendMessage(message) { return this.call.sendMessage(message); },
  destroy() { if (this.device) this.device.destroy(); },

  state() {
    const c = this.call;
    return {
      device: this.device && this.device.state,
      status: c && c.status(),
      codec: c && c.codec,
      direction: c && c.direction,
      parameters: c && c.parameters,
      customParameters: c && Object.fromEntries(c.customParameters || []),
      callerInfo: c && c.callerInfo,
      muted: c && c.isMuted(),
    };
  },

  // The strongest frequency (Hz) in the remote audio, or null for silence, from WebAudio.
  async remotePeak(ms) {
    const stream = this.call.getRemoteStream();
    if (!stream) return null;
    const ctx = new AudioContext();
    const source = ctx.createMediaStreamSource(stream);
    const analyser = ctx.createAnalyser();
    analyser.fftSize = 8192;
    source.connect(analyser);
    await new Promise((r) => setTimeout(r, ms || 600));
    const bins = new Float32Array(analyser.frequencyBinCount);
    analyser.getFloatFrequencyData(bins);
    let best = 0;
    for (let i = 1; i < bins.length; i++) if (bins[i] > bins[best]) best = i;
    await ctx.close();
    if (bins[best] < -70) return null;  // dBFS: nothing but noise
    return best * ctx.sampleRate / analyser.fftSize;
  },
};
