//! Stack room for deep input. Planning, binding and evaluating an expression recurse once per
//! level of nesting (`a + b + c ...` is a left-deep tree), so a generated query with thousands
//! of chained operators needs more stack than a thread's default 2 MiB (8 MiB on a main
//! thread). Planning runs on a thread with [`DEEP_STACK`] and the runtime's threads get
//! [`RUNTIME_STACK`]: address space reserved, memory only used as deep input touches it.
//! Nesting beyond what sqlparser accepts ([`MAX_NESTING`]) is a parse error that says so.

/// Stack of the thread SQL statements are parsed and planned on.
pub const DEEP_STACK: usize = 256 << 20;
/// Stack of each runtime thread (operators evaluate expressions there).
pub const RUNTIME_STACK: usize = 64 << 20;
/// Deepest nesting of parentheses, subqueries and calls the SQL parser accepts.
pub const MAX_NESTING: usize = 1000;

/// Runs `f` on a thread with [`DEEP_STACK`] bytes of stack and returns what it returns (a
/// panic in `f` is resumed here).
pub fn deep<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("weir-plan".into())
            .stack_size(DEEP_STACK)
            .spawn_scoped(s, f)
            .expect("cannot start a thread to plan on (out of threads or memory)")
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}
