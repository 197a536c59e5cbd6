//! A headless Chromium driven over WebDriver (Debian's `chromium` and `chromedriver`, installed by
//! `scripts/install-browser.sh`): the Deephaven IDE as a person opens it.
//!
//! Every wait that times out saves a screenshot of the page first, to the test binary's output directory
//! (`target/tmp/browser/`), and names it in the failure.

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use test_kit::stack::free_port;
use test_kit::wait;

/// How long the IDE may take to load, and an element or a text to appear in it.
pub const PAGE_DEADLINE: Duration = Duration::from_secs(120);

/// A browser session and the ChromeDriver serving it; dropping it ends both.
pub struct Browser {
    client: Client,
    driver: Child,
    /// Names the screenshots this session saves.
    name: String,
}

impl Browser {
    /// Starts ChromeDriver on a free port and opens a session in a fresh headless Chromium profile.
    pub async fn start(name: &str) -> Browser {
        let port = free_port();
        // A process group of its own, which the Chromium it starts joins: dropping the session ends both, even when
        // a failed test never closes the session.
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (scripts/install-browser.sh installs it)");
        let capabilities = serde_json::json!({
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                // No sandbox: tests may run as root. /dev/shm may be small in containers.
                "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1600,1000"],
            }
        });
        let capabilities = capabilities.as_object().expect("an object").clone();
        let driver_url = format!("http://127.0.0.1:{port}");
        let client = wait::until("ChromeDriver to open a session", PAGE_DEADLINE, || async {
            ClientBuilder::new(HttpConnector::new())
                .capabilities(capabilities.clone())
                .connect(&driver_url)
                .await
                .map_err(|err| err.to_string())
        })
        .await;
        Browser { client, driver, name: name.to_owned() }
    }

    /// Loads `url`.
    pub async fn open(&self, url: &str) {
        self.client.goto(url).await.unwrap_or_else(|err| panic!("opening {url}: {err}"));
    }

    /// Clicks the first element whose own text is exactly `text`, if there is one now.
    pub async fn try_click_text(&self, text: &str) -> Result<(), String> {
        self.try_click(Locator::XPath(&format!("//*[normalize-space(text())='{text}']"))).await
    }

    /// Clicks the first element `locator` finds, if there is one now.
    pub async fn try_click(&self, locator: Locator<'_>) -> Result<(), String> {
        let element = self.client.find(locator).await.map_err(|err| err.to_string())?;
        element.click().await.map_err(|err| err.to_string())
    }

    /// Maximizes the IDE panel whose tab is titled `title`.
    pub async fn maximize_panel(&self, title: &str) {
        let script = "const tab = [...document.querySelectorAll('.lm_tab')].find(t => t.textContent === arguments[0]);
            const button = tab && tab.closest('.lm_stack').querySelector('.lm_maximise');
            if (button) { button.click(); }
            return Boolean(button);";
        self.wait_for(&format!("a panel titled {title:?} to maximize"), || async {
            match self.client.execute(script, vec![title.into()]).await.map_err(|err| err.to_string())? {
                serde_json::Value::Bool(true) => Ok(()),
                other => Err(format!("no such panel ({other})")),
            }
        })
        .await;
    }

    /// Presses Escape in the page (closes an open menu).
    pub async fn escape(&self) -> Result<(), String> {
        let escape = '\u{e00c}'.to_string();
        self.client
            .active_element()
            .await
            .map_err(|err| err.to_string())?
            .send_keys(&escape)
            .await
            .map_err(|err| err.to_string())
    }

    /// The texts of every element matching the CSS `selector`, as the page holds them now (SVG text included).
    pub async fn texts(&self, selector: &str) -> Result<Vec<String>, String> {
        let script = "return [...document.querySelectorAll(arguments[0])].map(element => element.textContent);";
        let value = self.client.execute(script, vec![selector.into()]).await.map_err(|err| err.to_string())?;
        serde_json::from_value(value).map_err(|err| err.to_string())
    }

    /// Polls `probe` until it succeeds; on timeout saves a screenshot and fails naming it.
    pub async fn wait_for<T, F, Fut>(&self, what: &str, mut probe: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, String>>,
    {
        let deadline = tokio::time::Instant::now() + PAGE_DEADLINE;
        loop {
            let last = match probe().await {
                Ok(value) => return value,
                Err(observation) => observation,
            };
            if tokio::time::Instant::now() > deadline {
                let shot = self.save_screenshot("timeout").await;
                panic!("timed out after {PAGE_DEADLINE:?} waiting for {what}; last observation: {last}; page: {shot}");
            }
            tokio::time::sleep(wait::POLL_INTERVAL).await;
        }
    }

    /// Saves a PNG of the page as `<name>-<label>.png` in the output directory; returns its path (or why not).
    pub async fn save_screenshot(&self, label: &str) -> String {
        let path = output_dir().join(format!("{}-{label}.png", self.name));
        match self.client.screenshot().await {
            Ok(png) => match std::fs::write(&path, png) {
                Ok(()) => path.display().to_string(),
                Err(err) => format!("not saved ({}: {err})", path.display()),
            },
            Err(err) => format!("not taken ({err})"),
        }
    }

    /// Ends the session politely (Chromium closes); drop ends whatever is left.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let group = nix::unistd::Pid::from_raw(i32::try_from(self.driver.id()).expect("a pid fits an i32"));
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.driver.wait();
    }
}

/// Where screenshots go: a directory of this test binary's own under the target directory, never committed.
pub fn output_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&dir).unwrap_or_else(|err| panic!("creating {}: {err}", dir.display()));
    dir
}
