// genlab's latent decoder: an MLP decoder run in the browser, redrawn on every slider
// `input` event, the final code sent back to Python on release (`change`).
// Streamlit's component protocol by hand (no npm package): componentReady, render,
// setComponentValue, setFrameHeight. Weights arrive once per model id as base64 float32.
"use strict";
(function () {
  const state = { id: null, net: null, z: null, dims: [], shape: null, sent: false };
  const out = document.getElementById("out");
  const native = document.getElementById("native");
  const status = document.getElementById("status");
  const slidersBox = document.getElementById("sliders");

  function post(type, extra) {
    window.parent.postMessage(Object.assign({ isStreamlitMessage: true, type: type }, extra), "*");
  }
  function setValue(value) { post("streamlit:setComponentValue", { value: value, dataType: "json" }); }
  function setHeight() { post("streamlit:setFrameHeight", { height: document.body.scrollHeight + 8 }); }

  function floats(b64) {  // base64 of little-endian float32 -> Float32Array
    const bin = atob(b64);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return new Float32Array(bytes.buffer);
  }

  function loadNet(model) {
    return {
      output: model.output,
      shape: model.image_shape,
      layers: model.layers.map(l => ({ nIn: l.in, nOut: l.out, act: l.act, slope: l.slope,
                                       w: floats(l.weight), b: floats(l.bias),
                                       y: new Float32Array(l.out) })),
    };
  }

  function forward(net, z) {  // one code (Float32Array d) -> pixels in [0, 1] (Float32Array)
    let h = z;
    for (const l of net.layers) {
      const w = l.w, b = l.b, y = l.y, nIn = l.nIn;
      for (let o = 0; o < l.nOut; o++) {
        let s = b[o];
        const row = o * nIn;
        for (let i = 0; i < nIn; i++) s += w[row + i] * h[i];
        if (l.act === "relu") s = s > 0 ? s : 0;
        else if (l.act === "leaky_relu") s = s >= 0 ? s : l.slope * s;
        else if (l.act === "tanh") s = Math.tanh(s);
        else if (l.act === "sigmoid") s = 1 / (1 + Math.exp(-s));
        y[o] = s;
      }
      h = y;
    }
    const px = new Float32Array(h.length);
    for (let i = 0; i < h.length; i++) {
      const t = h[i];
      px[i] = net.output === "sigmoid" ? 1 / (1 + Math.exp(-t))
            : net.output === "tanh01" ? (Math.tanh(t) + 1) / 2 : Math.min(1, Math.max(0, t));
    }
    return px;
  }

  function draw() {  // decode state.z into the native-size canvas, then the enlarged one
    const t0 = performance.now();
    const px = forward(state.net, state.z);
    const [c, hgt, wid] = state.net.shape;
    const ctx = native.getContext("2d");
    const img = ctx.createImageData(wid, hgt);
    const plane = hgt * wid;
    for (let p = 0; p < plane; p++) {
      for (let ch = 0; ch < 3; ch++) {
        const v = px[(c === 3 ? ch : 0) * plane + p];
        img.data[4 * p + ch] = Math.round(Math.min(1, Math.max(0, v)) * 255);
      }
      img.data[4 * p + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
    const big = out.getContext("2d");
    big.imageSmoothingEnabled = false;
    big.drawImage(native, 0, 0, out.width, out.height);
    const ms = performance.now() - t0;
    out.dataset.decodeMs = ms.toFixed(3);
    out.dataset.draws = String(Number(out.dataset.draws || 0) + 1);
    window.genlabDecoder = { ms: ms, draws: Number(out.dataset.draws), z: Array.from(state.z) };
    requestAnimationFrame(() => {  // the frame that shows the new pixels
      out.dataset.frameMs = (performance.now() - t0).toFixed(3);
    });
    status.textContent = `decoded in the browser in ${ms.toFixed(2)} ms`;
  }

  function buildSliders(args) {
    slidersBox.innerHTML = "";
    args.dims.forEach((j, i) => {
      const row = document.createElement("div");
      row.className = "row";
      const label = document.createElement("label");
      const name = document.createElement("span");
      name.textContent = args.labels[i];
      const val = document.createElement("span");
      const input = document.createElement("input");
      input.type = "range";
      input.min = args.lo[i]; input.max = args.hi[i]; input.step = (args.hi[i] - args.lo[i]) / 200;
      input.value = args.z[j];
      input.setAttribute("aria-label", args.labels[i]);
      input.dataset.dim = String(j);
      val.textContent = Number(args.z[j]).toFixed(2);
      input.addEventListener("input", () => {
        state.z[j] = Number(input.value);
        val.textContent = state.z[j].toFixed(2);
        draw();
      });
      input.addEventListener("change", () => setValue({ z: Array.from(state.z), ms: window.genlabDecoder.ms }));
      label.append(name, val);
      row.append(label, input);
      slidersBox.append(row);
    });
  }

  function render(args) {
    if (args.model) {
      state.net = loadNet(args.model);
      state.id = args.model_id;
    }
    if (!state.net || state.id !== args.model_id) {  // a new iframe without the weights
      status.textContent = "asking for the decoder's weights ...";
      setValue({ need_weights: Math.random().toString(36).slice(2), z: args.z });
      return;
    }
    const same = state.z && state.key === args.state_key;
    if (!same) {  // a new base code or another set of sliders
      state.z = Float32Array.from(args.z);
      state.key = args.state_key;
      buildSliders(args);
      const [, hgt, wid] = state.net.shape;
      native.width = wid; native.height = hgt;
      out.width = wid * args.scale; out.height = hgt * args.scale;
    }
    draw();
    setHeight();
  }

  window.addEventListener("message", e => {
    if (e.data && e.data.type === "streamlit:render") render(e.data.args);
  });
  post("streamlit:componentReady", { apiVersion: 1 });
})();
