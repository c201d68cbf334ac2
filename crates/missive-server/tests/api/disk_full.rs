//! A full disk under SQLite: the first send that cannot commit makes
//! `/readyz` answer 503 at once; reads keep answering 200 (a recipient's
//! listing returns the stored messages even though their delivered mark
//! cannot be written); once space is freed, everything recovers and the
//! next listing applies the mark. The disk is a small tmpfs mounted by the
//! test (root only); skipped loudly where it cannot be mounted.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use missive_client::MessagesQuery;
use missive_client::protocol::{MessageStatus, SendMessageRequest};

use crate::helpers::{ALICE, BOB, TestAppBuilder, assert_error};
use crate::pg_outage::eventually;
use crate::test_db::TestDb;

/// A tmpfs of `size` mounted on a temp dir; unmounted (lazily, so that a
/// file still open does not keep it) when dropped, also when the test fails.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Result<Tmpfs, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).trim().to_owned());
        }
        Ok(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
        if !unmounted.is_ok_and(|s| s.success()) {
            eprintln!("warning: could not unmount {}", self.dir.path().display());
        }
    }
}

/// Writes zeros to `path` until the file system is full.
fn fill(path: &Path) -> PathBuf {
    let filler = path.join("filler");
    let mut file = std::fs::File::create(&filler).expect("a filler file");
    let chunk = vec![0u8; 16 * 1024];
    loop {
        match file.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
            Err(e) => panic!("filling the disk: {e}"),
        }
    }
    let _ = file.sync_all();
    filler
}

fn loud(line: &str) {
    let _ = writeln!(std::io::stderr(), "\n*** {line} ***\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_unready_at_once_and_reads_keep_working() {
    let disk = match Tmpfs::mount("4m") {
        Ok(disk) => disk,
        Err(e) => {
            loud(&format!(
                "skipped: cannot mount a tmpfs for the full-disk test: {e}"
            ));
            return;
        }
    };
    let url = format!("sqlite://{}", disk.path().join("missive.db").display());
    let app = TestAppBuilder::new()
        .database(Arc::new(TestDb::sqlite()))
        .configure(move |config| config.database_url = url)
        .spawn()
        .await;
    let alice = app.user(ALICE).await;
    let bob = app.user(BOB).await;
    let first = alice.send_to(BOB, "stored before the disk filled").await;
    assert_eq!(app.client.readyz().await.expect("ready").status, 200);

    let filler = fill(disk.path());

    // What the WAL still has room for commits; the first send that cannot
    // commit answers 503, and readiness says so at once.
    let mut stored = vec![first.content.clone()];
    let mut refused = false;
    for i in 0..2000 {
        let content = format!("message {i} while the disk fills");
        let sent = alice
            .client
            .send_message(&SendMessageRequest {
                receiver: Some(BOB.to_owned()),
                content: content.clone(),
                ..Default::default()
            })
            .await;
        match sent {
            Ok(r) if r.status == 201 => stored.push(content),
            other => {
                assert_error(other, 503, "unavailable");
                refused = true;
                break;
            }
        }
    }
    assert!(refused, "no send was refused on a full disk");
    assert_error(app.client.readyz().await, 503, "unavailable");
    eprintln!("{} sends committed after the disk filled", stored.len() - 1);
    // And it stays so (no flapping back on a one-page probe that still fits),
    // over several probes.
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_error(app.client.readyz().await, 503, "unavailable");
    }

    // The recipient still reads what was stored; the delivered mark waits.
    let query = MessagesQuery {
        limit: Some(200),
        ..MessagesQuery::default()
    };
    let listed = bob
        .client
        .list_messages(first.chat_id, &query)
        .await
        .expect("the recipient reads on a full disk");
    assert_eq!(listed.status, 200);
    let mut contents: Vec<String> = listed.body.iter().map(|m| m.content.clone()).collect();
    contents.reverse();
    let expected: Vec<String> = stored.iter().rev().take(200).rev().cloned().collect();
    assert_eq!(contents, expected);
    assert!(
        listed.body.iter().all(|m| m.status == MessageStatus::Sent),
        "nothing could be marked delivered"
    );

    std::fs::remove_file(&filler).expect("space freed");

    eventually(Duration::from_secs(10), "ready again", || async {
        matches!(app.client.readyz().await, Ok(r) if r.status == 200)
    })
    .await;
    alice.send_to(BOB, "after the disk was freed").await;
    let listed = bob
        .client
        .list_messages(first.chat_id, &query)
        .await
        .expect("a listing after recovery");
    assert_eq!(listed.status, 200);
    assert_eq!(listed.body[0].content, "after the disk was freed");
    // This listing committed the mark: the sender sees its messages delivered.
    let seen = alice.messages(first.chat_id, 200).await;
    assert!(
        seen.iter().all(|m| m.status == MessageStatus::Delivered),
        "delivered after recovery: {:?}",
        seen.iter().map(|m| m.status).collect::<Vec<_>>()
    );

    app.stop().await.expect("the server stops");
    drop(disk);
}
