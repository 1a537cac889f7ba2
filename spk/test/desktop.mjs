// The package's DSM desktop apps in Chromium (called by harness.py with the installed package running).
//
// DSM cannot run here, so its desktop is a stand-in: the few pieces of ExtJS and SYNO.SDS that the
// launcher script (ui/dsm/backhome.js) uses — Ext.define, Ext.apply, SYNO.SDS.AppInstance and
// SYNO.SDS.AppWindow — written below to behave as DSM's do for this purpose (an AppInstance opens the
// window class named by appWindowName; a window renders its `html` into its body). They are NOT DSM's
// classes. Everything else is real: the launcher script and ui/config come from the installed package
// through nginx (webman/3rdparty/<package>, as DSM links dsmuidir), the iframe loads the web UI through
// the package's reverse-proxy snippet, and the service signs the user in from the DSM session cookie.
//
// Usage: node spk/test/desktop.mjs '<json>' with {origin, uiPath, apps: [{id, sid, user, view,
// otherSid, otherUser}]}; view is "admin" or "portal"; otherSid is a session of a user who is not an
// administrator, who must be refused the admin app. Prints one line per check; exits 1 on the first failure.
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
// playwright-core comes with the web UI's dev dependencies (ui/node_modules).
const { chromium } = createRequire(join(root, 'ui/package.json'))('playwright-core');
const spec = JSON.parse(process.argv[2] ?? '{}');
const { origin, uiPath, apps } = spec;
if (!origin || !uiPath || !Array.isArray(apps)) {
  console.error('usage: desktop.mjs \'{"origin":…,"uiPath":…,"apps":[…]}\'');
  process.exit(2);
}

// The stand-in desktop (see the comment at the top). ES5 on purpose: the launcher must run in it.
const STAND_IN = `
(function () {
  "use strict";
  function lookup(name) {
    var node = window;
    name.split(".").forEach(function (part) { node = node && node[part]; });
    if (typeof node !== "function") { throw new Error("class " + name + " is not defined"); }
    return node;
  }
  function place(name, value) {
    var parts = name.split("."), node = window;
    parts.slice(0, -1).forEach(function (part) { node = node[part] = node[part] || {}; });
    node[parts[parts.length - 1]] = value;
  }
  window.Ext = {
    defined: {},
    apply: function (target, source) {
      if (source) { Object.keys(source).forEach(function (k) { target[k] = source[k]; }); }
      return target;
    },
    define: function (name, body) {
      var parent = lookup(body.extend || "Object");
      var own = Object.prototype.hasOwnProperty.call(body, "constructor") ? body.constructor : null;
      function Class() {
        if (!own) { return parent.apply(this, arguments); }
        var saved = this.callParent;
        this.callParent = function (args) { return parent.apply(this, args || []); };
        try { return own.apply(this, arguments); } finally { this.callParent = saved; }
      }
      Class.prototype = Object.create(parent.prototype);
      Object.keys(body).forEach(function (k) {
        if (k !== "constructor" && k !== "extend") { Class.prototype[k] = body[k]; }
      });
      Class.prototype.constructor = Class;
      Ext.defined[name] = body;
      place(name, Class);
    }
  };
  var nextId = 1;
  function AppWindow(config) {
    this.config = Ext.apply({}, config);
    this.appInstance = this.config.appInstance;
  }
  AppWindow.prototype.show = function (desktop) {
    var c = this.config;
    var el = document.createElement("div");
    el.className = "window";
    el.id = "window-" + nextId++;
    el.style.width = c.width + "px";
    el.style.height = c.height + "px";
    el.dataset.minWidth = c.minWidth;
    el.dataset.minHeight = c.minHeight;
    var title = document.createElement("div");
    title.className = "title";
    title.textContent = c.title;
    var body = document.createElement("div");
    body.className = "body";
    body.innerHTML = c.html || "";
    el.appendChild(title);
    el.appendChild(body);
    desktop.appendChild(el);
    this.el = el;
    return el;
  };
  function AppInstance(config) {
    this.config = Ext.apply({}, config);
    var Window = lookup(this.appWindowName);
    this.window = new Window({ appInstance: this });
  }
  place("SYNO.SDS.AppWindow", AppWindow);
  place("SYNO.SDS.AppInstance", AppInstance);
}());
`;
const DESKTOP = `<!doctype html><html><head><meta charset="utf-8"><title>DSM desktop stand-in</title>
<style>html,body{margin:0;height:100%} .window{display:flex;flex-direction:column;border:1px solid #888}
.title{height:28px;font:14px sans-serif;padding:4px} .body{flex:1;min-height:0}</style>
<script>${STAND_IN}</script>
<script src="${uiPath}/backhome.js"></script></head><body><div id="desktop"></div></body></html>`;

function check(condition, message) {
  if (!condition) throw new Error(message);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox'],
});
let failed = false;

/** Opens app `id` on the stand-in desktop with DSM session `sid`; returns the page and what it saw. */
async function open(id, sid) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  // The DSM session: DSM's `id` cookie on the desktop's origin.
  await context.addCookies([{ name: 'id', value: sid, url: origin }]);
  const page = await context.newPage();
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(String(e)));
  await page.route(`${origin}/desktop-stand-in.html`, (route) =>
    route.fulfill({ contentType: 'text/html', body: DESKTOP }));
  await page.goto(`${origin}/desktop-stand-in.html`);
  check(page.errors.length === 0, `the launcher script failed to load: ${page.errors.join('; ')}`);

  // What DSM does when the tile is clicked: read ui/config, create the app class, show its window.
  const opened = await page.evaluate(async ({ uiPath, id }) => {
    const response = await fetch(`${uiPath}/config`);
    if (!response.ok) return { error: `GET ${uiPath}/config: HTTP ${response.status}` };
    const config = await response.json();
    const file = Object.keys(config).find((f) => config[f][id]);
    if (!file) return { error: `ui/config registers no ${id}` };
    const entry = config[file][id];
    const Class = id.split('.').reduce((node, part) => node && node[part], window);
    if (typeof Class !== 'function') return { error: `${file} does not define ${id}` };
    const instance = new Class({ id });
    if (instance.appWindowName !== entry.appWindow) {
      return { error: `${id} opens ${instance.appWindowName}, ui/config says ${entry.appWindow}` };
    }
    const el = instance.window.show(document.getElementById('desktop'));
    const frame = el.querySelector('iframe');
    return {
      file, type: entry.type, windowType: config[file][entry.appWindow]?.type,
      title: el.querySelector('.title').textContent,
      width: el.offsetWidth, height: el.offsetHeight,
      minWidth: Number(el.dataset.minWidth), minHeight: Number(el.dataset.minHeight),
      src: frame && frame.getAttribute('src'), id: el.id,
      frameSize: frame ? [frame.offsetWidth, frame.offsetHeight] : null,
    };
  }, { uiPath, id });
  check(!opened.error, opened.error);
  const { width, height, minWidth, minHeight, frameSize } = opened;
  check(opened.type === 'app' && opened.windowType === 'lib',
    `${id}: ui/config types ${opened.type}/${opened.windowType}, not app/lib`);
  check(minWidth > 0 && minWidth <= width && minHeight <= height,
    `${id}: the minimum size ${minWidth}x${minHeight} does not fit ${width}x${height}`);
  check(frameSize && frameSize[0] >= width - 4 && frameSize[1] >= height - 40,
    `${id}: the iframe (${frameSize}) does not fill the ${width}x${height} window`);
  return { context, page, opened, frame: page.frameLocator(`#${opened.id} iframe`) };
}

try {
  for (const app of apps) {
    const { context, page, opened, frame } = await open(app.id, app.sid);
    check(opened.src === `/backhome/#/${app.view}`, `${app.id}: the iframe opens ${opened.src}`);
    // The web UI inside the window, signed in from the DSM session.
    if (app.view === 'admin') {
      await frame.locator('nav[aria-label="Sections"]').waitFor({ timeout: 30_000 });
    } else {
      await frame.getByRole('heading', { name: 'Backhome Portal' }).waitFor({ timeout: 30_000 });
    }
    await frame.getByText(`Signed in as ${app.user}`).first().waitFor({ timeout: 10_000 });
    check(await frame.getByLabel('Password').count() === 0,
      `${app.id}: the web UI asks for a password instead of using the DSM session`);
    check(page.errors.length === 0, `${app.id}: page errors: ${page.errors.join('; ')}`);
    console.log(`    ${app.id} (${opened.file}): window "${opened.title}" ${opened.width}x${opened.height} ` +
      `(min ${opened.minWidth}x${opened.minHeight}), iframe ${opened.src}: signed in as ${app.user}`);
    await context.close();

    if (app.view === 'admin' && app.otherSid) {
      // The same window for a DSM user who is not an administrator: the web UI refuses the admin app.
      const other = await open(app.id, app.otherSid);
      await other.frame.getByText('Only DSM administrators may open').waitFor({ timeout: 30_000 });
      check(await other.frame.locator('nav[aria-label="Sections"]').count() === 0,
        `${app.id}: a user who is not an administrator sees the admin app`);
      console.log(`    ${app.id} for ${app.otherUser}, who is not an administrator: refused`);
      await other.context.close();
    }
  }
} catch (e) {
  console.error(`desktop: ${e.message}`);
  failed = true;
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
