//! The binary's panic hook (`casegate::panic_report`): a panic becomes one `error` line of the
//! process log that names where it happened, is counted for `casegate_panics_total`, and never
//! carries a message formatted at run time, which may quote what a client sent.
//!
//! One test in its own binary: the hook and the log's subscriber are the process's, so nothing
//! else may run beside it.

use casegate::metrics::Metrics;

mod common;

use common::log_capture::LogBuffer;

/// Runs `work` on a thread of the given name and says whether it panicked.
fn panicked_on(name: &str, work: impl FnOnce() + Send + 'static) -> bool {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(work)
        .unwrap()
        .join()
        .is_err()
}

/// An error that quotes its input, as many do: `unwrap` puts it in the panic's message.
fn read_case_number(text: &str) -> Result<u32, String> {
    text.parse().map_err(|_| format!("not a number: {text}"))
}

#[test]
fn a_panic_is_logged_where_it_happened_counted_and_never_quotes_a_formatted_message() {
    let sink = LogBuffer::default();
    // The whole process's subscriber: the hook runs on the panicking thread.
    tracing::subscriber::set_global_default(
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(sink.clone())
            .finish(),
    )
    .unwrap();
    let metrics = Metrics::new();
    let before = casegate::panic_report::panics();
    casegate::panic_report::install();
    // Installing twice keeps one hook: each panic below is counted once.
    casegate::panic_report::install();

    let literal = panicked_on("literal-panic", || {
        panic!("the shelf index went past its end")
    });
    let link = "cg1.secret-link-token-bytes";
    let formatted = panicked_on("formatted-panic", move || {
        read_case_number(link).unwrap();
    });
    // A task of a worker's kind of runtime: the runtime ends that task only, and the others
    // finish.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let (task, neighbour) = runtime.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(async { panic!("a connection's task gave up") });
        tasks.spawn(async { "served" });
        let mut results = Vec::new();
        while let Some(result) = tasks.join_next().await {
            results.push(result);
        }
        let panicked = results.iter().any(|result| result.is_err());
        let served = results.iter().any(|result| matches!(result, Ok("served")));
        (panicked, served)
    });
    let counted = casegate::panic_report::panics() - before;
    let scrape = metrics.render();
    // Back to Rust's own hook, so that a failed assertion below prints its message.
    drop(std::panic::take_hook());
    let log = sink.text();

    assert!(
        literal && formatted && task,
        "every one of the three panicked"
    );
    assert!(
        neighbour,
        "the task beside the panicking one still finished"
    );
    assert_eq!(counted, 3, "{log}");
    assert!(
        scrape.contains(&format!("casegate_panics_total {}\n", before + 3)),
        "{scrape}"
    );
    let lines: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("panicked"))
        .collect();
    assert_eq!(lines.len(), 3, "one line a panic:\n{log}");
    assert!(lines.iter().all(|line| line.contains("ERROR")), "{log}");
    assert!(
        lines
            .iter()
            .all(|line| line.contains("tests/panic_report.rs:")),
        "each names the place in the source:\n{log}"
    );
    let line_of = |thread: &str| {
        let named = format!("thread=\"{thread}\"");
        *lines
            .iter()
            .find(|line| line.contains(&named))
            .unwrap_or_else(|| panic!("no line names the thread {thread}:\n{log}"))
    };
    let literal_line = line_of("literal-panic");
    assert!(
        literal_line.contains("the shelf index went past its end"),
        "a literal of the source is logged: {literal_line}"
    );
    let formatted_line = line_of("formatted-panic");
    assert!(
        formatted_line.contains("not logged"),
        "a message formatted at run time is replaced: {formatted_line}"
    );
    assert!(
        !log.contains("secret-link-token-bytes") && !log.contains("not a number"),
        "nothing of the formatted message reaches the log:\n{log}"
    );
    assert!(
        log.contains("a connection's task gave up"),
        "a literal in a task is logged too:\n{log}"
    );
}
