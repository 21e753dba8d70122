//! The HTML page in a real browser: Debian's chromium, headless, driven
//! through the DevTools protocol. The test loads the page rendered from the
//! fixture, clicks a failing cell with the mouse, and checks what the page
//! then shows; the screenshot is kept at
//! `target/tmp/report-html/screenshot.png`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test: a panic is how it reports a failure"
)]

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};
use tapmatrix_report::{Format, RenderOptions, Results, render};
use tungstenite::{Message, WebSocket, stream::MaybeTlsStream};

/// Chromium, installed by `cargo xtask test` (Debian's `chromium`).
fn chromium() -> PathBuf {
    ["chromium", "chromium-browser"]
        .iter()
        .find_map(|name| {
            std::env::split_paths(&std::env::var_os("PATH")?)
                .map(|dir| dir.join(name))
                .find(|path| path.is_file())
        })
        .unwrap_or_else(|| {
            panic!("chromium is missing: `cargo xtask test` installs it (apt-get install chromium)")
        })
}

/// The browser, killed when the test ends.
struct Browser(Child);

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A DevTools session on one page.
struct Session {
    socket: WebSocket<MaybeTlsStream<TcpStream>>,
    next: u64,
    session: String,
}

impl Session {
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let mut message = json!({"id": id, "method": method, "params": params});
        if !self.session.is_empty() {
            message["sessionId"] = json!(self.session);
        }
        self.socket
            .send(Message::text(message.to_string()))
            .unwrap();
        loop {
            let Message::Text(text) = self.socket.read().unwrap() else {
                continue;
            };
            let reply: Value = serde_json::from_str(text.as_str()).unwrap();
            if reply["id"] == id {
                assert!(reply.get("error").is_none(), "{method}: {reply}");
                return reply["result"].clone();
            }
        }
    }

    fn eval(&mut self, expression: &str) -> Value {
        let result = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true}),
        );
        assert!(
            result.get("exceptionDetails").is_none(),
            "{expression}: {result}"
        );
        result["result"]["value"].clone()
    }

    /// Waits until `expression` is true.
    fn wait_for(&mut self, expression: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.eval(expression) != json!(true) {
            assert!(Instant::now() < deadline, "never true: {expression}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn launch(profile: &Path) -> (Browser, String) {
    let child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--remote-debugging-port=0",
            "--window-size=1400,900",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("about:blank")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let browser = Browser(child);
    // Chromium writes its port and browser endpoint to DevToolsActivePort.
    let port_file = profile.join("DevToolsActivePort");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(text) = std::fs::read_to_string(&port_file)
            && let [port, path] = text.lines().collect::<Vec<_>>()[..]
        {
            return (browser, format!("ws://127.0.0.1:{port}{path}"));
        }
        assert!(
            Instant::now() < deadline,
            "chromium did not start its DevTools server"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_click_on_a_cell_shows_its_reason_diff_and_logs() {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-html");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/results.json");
    let results =
        Results::from_json("results.json", &std::fs::read_to_string(fixture).unwrap()).unwrap();
    let page = out.join("index.html");
    std::fs::write(
        &page,
        render(&results, Format::Html, &RenderOptions::default()),
    )
    .unwrap();
    let profile = tempfile::tempdir().unwrap();
    let (_browser, endpoint) = launch(profile.path());
    let (socket, _) = tungstenite::connect(endpoint.as_str()).unwrap();
    let mut s = Session {
        socket,
        next: 0,
        session: String::new(),
    };
    let url = format!("file://{}", page.display());
    let target = s.call("Target.createTarget", json!({"url": "about:blank"}));
    let attached = s.call(
        "Target.attachToTarget",
        json!({"targetId": target["targetId"], "flatten": true}),
    );
    s.session = attached["sessionId"].as_str().unwrap().to_owned();
    s.call("Page.enable", json!({}));
    s.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 1400, "height": 900, "deviceScaleFactor": 1, "mobile": false}),
    );
    s.call("Page.navigate", json!({"url": url}));
    s.wait_for("document.readyState === 'complete' && !!document.querySelector('#scripts')");
    // Before the click, no detail is shown.
    let panel = "getComputedStyle(document.getElementById('d-s-1-2')).display";
    assert_eq!(s.eval(panel), json!("none"));
    // openat_names on 7.3 fails: click its cell with the mouse.
    let rect = s.eval(
        "(() => { const r = document.querySelector('a[href=\"#d-s-1-2\"]').getBoundingClientRect(); \
         return [r.x + r.width / 2, r.y + r.height / 2]; })()",
    );
    let (x, y) = (rect[0].as_f64().unwrap(), rect[1].as_f64().unwrap());
    for kind in ["mousePressed", "mouseReleased"] {
        s.call(
            "Input.dispatchMouseEvent",
            json!({"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}),
        );
    }
    s.wait_for("location.hash === '#d-s-1-2'");
    assert_eq!(s.eval(panel), json!("block"));
    let shown = s.eval("document.getElementById('d-s-1-2').innerText");
    let shown = shown.as_str().unwrap();
    for expected in [
        "openat_names on 7.3: FAIL",
        "output differs from tests/scripts/snapshots/openat_names.snap",
        "+openat /etc/group <truncated>",
        "console log",
        "agent log",
    ] {
        assert!(
            shown.contains(expected),
            "{expected:?} not shown in:\n{shown}"
        );
    }
    let links = s.eval(
        "[...document.querySelectorAll('#d-s-1-2 .logs a')].map(a => a.getAttribute('href'))",
    );
    assert_eq!(
        links,
        json!([
            "logs/7.3/boot-3.console.log",
            "logs/7.3/openat_names.boot-3.agent.log"
        ])
    );
    // The panel is on screen, beside the grid.
    let visible = s.eval(
        "(() => { const r = document.getElementById('d-s-1-2').getBoundingClientRect(); \
         return r.width > 200 && r.height > 200 && r.left >= 0 && r.right <= innerWidth; })()",
    );
    assert_eq!(visible, json!(true));
    // An unresolved alias shows its suggestions.
    s.call("Page.navigate", json!({"url": format!("{url}#d-p-1-1")}));
    s.wait_for("location.hash === '#d-p-1-1' && getComputedStyle(document.getElementById('d-p-1-1')).display === 'block'");
    let shown = s.eval("document.getElementById('d-p-1-1').innerText");
    assert!(
        shown
            .as_str()
            .unwrap()
            .contains("syscalls:sys_enter_ftruncate"),
        "{shown}"
    );
    // Back to the failing cell for the screenshot kept with the test run.
    s.call("Page.navigate", json!({"url": format!("{url}#d-s-1-2")}));
    s.wait_for("location.hash === '#d-s-1-2'");
    let shot = s.call("Page.captureScreenshot", json!({"format": "png"}));
    let png = base64::engine::general_purpose::STANDARD
        .decode(shot["data"].as_str().unwrap())
        .unwrap();
    assert!(png.starts_with(b"\x89PNG"));
    std::fs::write(out.join("screenshot.png"), png).unwrap();
    eprintln!("screenshot: {}", out.join("screenshot.png").display());
}
