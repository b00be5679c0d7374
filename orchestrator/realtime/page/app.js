// The browser client of /v1/realtime (GA dialect): microphone → AudioWorklet → PCM16 24 kHz →
// input_audio_buffer.append; reply audio deltas are scheduled gap-free; the user's speech stops playback
// (barge-in) and tells the server how much was heard (conversation.item.truncate).
const $ = (id) => document.getElementById(id);
const state = { connected: false, playedSamples: 0, scheduledSamples: 0, transcripts: [], replies: [], errors: [] };
window.voiceState = state; // read by people debugging, and by the browser test

let ws = null, ctx = null, micStream = null, playHead = 0, sources = [], replyLine = null, current = null;

function b64FromPcm(buffer) {
  const bytes = new Uint8Array(buffer);
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

function pcmFromB64(b64) {
  const raw = atob(b64), pcm = new Int16Array(raw.length / 2);
  for (let i = 0; i < pcm.length; i++) pcm[i] = (raw.charCodeAt(2 * i) | (raw.charCodeAt(2 * i + 1) << 8)) << 16 >> 16;
  return pcm;
}

function line(cls, text) {
  const p = document.createElement('p');
  p.className = cls;
  p.textContent = text;
  $('log').appendChild(p);
  return p;
}

function setStatus(text) { $('status').textContent = text; }

function play(itemId, pcm) {
  const buffer = ctx.createBuffer(1, pcm.length, 24000), data = buffer.getChannelData(0);
  for (let i = 0; i < pcm.length; i++) data[i] = pcm[i] / 32768;
  const src = ctx.createBufferSource();
  src.buffer = buffer;
  src.connect(ctx.destination);
  const at = Math.max(playHead, ctx.currentTime + 0.05);
  if (!current || current.itemId !== itemId) current = { itemId, startedAt: at, samples: 0 };
  src.start(at);
  playHead = at + buffer.duration;
  state.scheduledSamples += pcm.length;
  current.samples += pcm.length;
  src.onended = () => {
    state.playedSamples += pcm.length;
    sources = sources.filter((s) => s !== src);
    if (!sources.length) setStatus('듣는 중');
  };
  sources.push(src);
  setStatus('말하는 중');
}

function stopPlayback() {
  if (!sources.length || !current) return;
  const heardMs = Math.max(0, Math.round((ctx.currentTime - current.startedAt) * 1000));
  sources.forEach((s) => { s.onended = null; s.stop(); });
  sources = [];
  playHead = 0;
  send({ type: 'conversation.item.truncate', item_id: current.itemId, content_index: 0,
         audio_end_ms: Math.min(heardMs, Math.floor(current.samples / 24)) });
  current = null;
}

function send(event) { if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(event)); }

function onEvent(ev) {
  switch (ev.type) {
    case 'session.created': state.connected = true; setStatus('듣는 중'); break;
    case 'input_audio_buffer.speech_started': stopPlayback(); setStatus('듣는 중'); break;
    case 'conversation.item.input_audio_transcription.delta': $('partial').textContent = ev.transcript || ev.delta; break;
    case 'conversation.item.input_audio_transcription.completed':
      $('partial').textContent = '';
      if (ev.transcript) { state.transcripts.push(ev.transcript); line('user', ev.transcript); }
      break;
    case 'response.created': replyLine = line('bot', ''); setStatus('생각 중'); break;
    case 'response.output_audio_transcript.delta':
    case 'response.output_text.delta':
      if (replyLine) replyLine.textContent += ev.delta;
      break;
    case 'response.output_audio.delta': play(ev.item_id, pcmFromB64(ev.delta)); break;
    case 'response.done':
      if (replyLine) state.replies.push(replyLine.textContent);
      replyLine = null;
      break;
    case 'error': state.errors.push(ev.error); console.warn('server error', ev.error); break;
  }
}

async function start() {
  const key = $('key').value.trim() || new URLSearchParams(location.search).get('key');
  const protocols = ['realtime'].concat(key ? ['openai-insecure-api-key.' + key] : []);
  ctx = new AudioContext({ sampleRate: 24000 });
  await ctx.audioWorklet.addModule('/static/capture-worklet.js');
  micStream = await navigator.mediaDevices.getUserMedia({
    audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true } });
  const mic = ctx.createMediaStreamSource(micStream), capture = new AudioWorkletNode(ctx, 'capture');
  const mute = ctx.createGain();
  mute.gain.value = 0;
  mic.connect(capture).connect(mute).connect(ctx.destination); // pulled by the graph, never heard
  ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/v1/realtime?model=voice-ko`, protocols);
  ws.onopen = () => send({ type: 'session.update', session: { type: 'realtime',
    audio: { input: { turn_detection: { type: 'server_vad', interrupt_response: true, create_response: true } } } } });
  ws.onmessage = (e) => onEvent(JSON.parse(e.data));
  ws.onclose = () => { state.connected = false; setStatus('연결 끊김'); };
  capture.port.onmessage = (e) => send({ type: 'input_audio_buffer.append', audio: b64FromPcm(e.data) });
  $('talk').textContent = '그만';
  $('talk').classList.add('live');
}

function stop() {
  if (ws) ws.close();
  if (micStream) micStream.getTracks().forEach((t) => t.stop());
  if (ctx) ctx.close();
  ws = ctx = micStream = null;
  sources = [];
  $('talk').textContent = '말하기';
  $('talk').classList.remove('live');
  setStatus('대기 중');
}

$('talk').onclick = () => (ws ? stop() : start().catch((err) => { setStatus('오류: ' + err.message); stop(); }));
