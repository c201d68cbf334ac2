//! The binary names the real problem when it refuses to work: a directory
//! given to `restore` or `backup`, and settings that cannot work (a zero
//! timeout, `MAX_CONNECTIONS=0`), refused at start naming the variable.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::{output_text, run_missive};

#[tokio::test]
async fn restore_and_backup_of_a_directory_say_it_is_a_directory() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let database = format!("sqlite://{}", dir.path().join("live.db").display());
    let not_a_file = dir.path().join("backups");
    std::fs::create_dir(&not_a_file).expect("a directory");
    let not_a_file = not_a_file.display().to_string();

    let out = run_missive(&["restore", &not_a_file], &database).await;
    let text = output_text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains(&format!("{not_a_file} is a directory, not a backup file")),
        "{text}"
    );
    assert!(!text.contains("disk I/O error"), "{text}");

    // The live database must exist for a backup to get as far as its target.
    let out = run_missive(&["migrate"], &database).await;
    assert!(out.status.success(), "{}", output_text(&out));
    let out = run_missive(&["backup", &not_a_file], &database).await;
    let text = output_text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains(&format!("{not_a_file} is a directory")),
        "{text}"
    );
}

/// Starts the server binary with `env` set and waits (at most 10 s) for it
/// to exit; `None` when it was still running (then it is killed).
fn start_with(env: &[(&str, &str)]) -> Option<std::process::Output> {
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut command = Command::new(env!("CARGO_BIN_EXE_missive"));
    command
        .env("DATABASE_URL", "sqlite::memory:")
        .env("BIND", "127.0.0.1")
        .env("PORT", "0")
        .env("LOG_LEVEL", "WARN")
        .env_remove("REDIS_URL")
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("the binary starts");
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        if child.try_wait().expect("waits").is_some() {
            return Some(child.wait_with_output().expect("its output"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

#[tokio::test]
async fn settings_that_cannot_work_are_refused_at_start_naming_the_variable() {
    for (name, value) in [
        ("HTTP_HEADER_TIMEOUT", "0"),
        ("HTTP_HEADER_TIMEOUT", "0s"),
        ("HTTP_BODY_TIMEOUT", "0"),
        ("HTTP_IDLE_TIMEOUT", "0ms"),
        ("MAX_CONNECTIONS", "0"),
    ] {
        let out = tokio::task::spawn_blocking(move || start_with(&[(name, value)]))
            .await
            .expect("the task runs")
            .unwrap_or_else(|| panic!("{name}={value}: the server started"));
        let text = output_text(&out);
        assert!(!out.status.success(), "{name}={value}: {text}");
        assert!(text.contains(name), "{name}={value}: {text}");
    }
}
