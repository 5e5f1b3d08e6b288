//! Route-block semantics. [`Program::compile`] turns the AST's route blocks
//! into a checked program once, at load: every route name, function name,
//! argument count and constant argument is resolved or rejected there, with
//! file:line:col. [`Program::run`] then interprets one route for one message
//! against a [`Host`]: flags, AVPs, `$var`s and xlog are handled here; anything
//! that touches the message, transactions, the network or the trace goes
//! through the host. Pure: no I/O, no clock; depends on `cfg` only.

mod compile;
mod funcs;
mod host;
mod interp;
mod value;

use std::collections::HashMap;
use std::fmt;

pub use crate::cfg::ast::RouteKind;
pub use host::{Dest, Host, HostCall, MsgPv, PvError, Ret, TraceDest, TraceMode};
pub use value::{AvpName, AvpNameError, Avps, MsgState, Value, Vars};

use crate::cfg::{Diagnostic, ast};

/// Kamailio's ROUTE_MAX_REC_LEV: route() nesting beyond this fails with -1.
pub(crate) const MAX_ROUTE_DEPTH: u32 = 100;

/// Identifies one compiled route block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteId(u32);

impl fmt::Display for RouteId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// How a route run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Fell off the end of the route (or `break` outside a loop).
    End,
    /// `exit`, `return(0)`, or a function returning 0.
    Exit,
    /// `drop`: the caller discards the message/reply/branch.
    Drop,
    /// `return(n)` with n ≠ 0 at the top level of the route.
    Return(i32),
}

/// What compilation needs from the configuration.
#[derive(Debug, Clone)]
pub struct CompileEnv {
    /// Loaded modules by base name (`tm`, `siptrace`…): a function of a module
    /// that is not loaded is an error, as in Kamailio.
    pub modules: Vec<String>,
    /// `max_while_loops` global (Kamailio default 100).
    pub max_while_loops: u32,
    /// maxfwd's `max_limit` (default 256): the cap for mf_process_maxfwd_header's value.
    pub maxfwd_max_limit: u32,
}

pub(crate) struct RouteDef {
    pub kind: RouteKind,
    pub name: Option<String>,
    pub body: compile::Block,
}

/// A compiled routing script. Immutable once built; run it as often as needed.
pub struct Program {
    routes: Vec<RouteDef>,
    request: RouteId,
    onreply: Option<RouteId>,
    onsend: Option<RouteId>,
    names: HashMap<(RouteKind, String), RouteId>,
    max_while_loops: u32,
}

impl fmt::Debug for Program {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Program")
            .field("routes", &self.routes.len())
            .field("request", &self.request)
            .finish_non_exhaustive()
    }
}

impl Program {
    /// Compiles the route blocks of `cfg`, reporting every problem found.
    pub(crate) fn compile(cfg: &ast::Cfg, env: &CompileEnv) -> Result<Program, Vec<Diagnostic>> {
        compile::compile(cfg, env)
    }

    /// `request_route` / `route {…}`: runs for every request received.
    pub fn request_route(&self) -> RouteId {
        self.request
    }

    /// `onreply_route {…}` / `reply_route {…}`: runs for every reply received.
    pub fn onreply_route(&self) -> Option<RouteId> {
        self.onreply
    }

    /// `onsend_route {…}`: runs for every request sent.
    pub(crate) fn onsend_route(&self) -> Option<RouteId> {
        self.onsend
    }

    /// A named route: `route[N]` (`RouteKind::Named`), `onreply_route[N]`,
    /// `failure_route[N]`, `branch_route[N]`, `event_route[N]`.
    pub fn route_id(&self, kind: RouteKind, name: &str) -> Option<RouteId> {
        self.names.get(&(kind, name.to_string())).copied()
    }

    /// The route's name as written, or its keyword when it has none.
    pub(crate) fn route_name(&self, id: RouteId) -> &str {
        match self.routes.get(id.0 as usize) {
            Some(RouteDef { name: Some(n), .. }) => n,
            Some(r) => r.kind.keyword(),
            None => "?",
        }
    }

    pub fn route_kind(&self, id: RouteId) -> Option<RouteKind> {
        self.routes.get(id.0 as usize).map(|r| r.kind)
    }

    /// Runs `route` for one message. `st` is the message's (or transaction's)
    /// flags and AVPs; `vars` the process-wide `$var`s.
    pub fn run(
        &self,
        route: RouteId,
        st: &mut MsgState,
        vars: &mut Vars,
        host: &mut dyn Host,
    ) -> Outcome {
        interp::run(self, route, st, vars, host)
    }

    pub(crate) fn route_def(&self, id: RouteId) -> Option<&RouteDef> {
        self.routes.get(id.0 as usize)
    }
}

/// Modules providing script functions (for checking the module list).
pub fn function_modules() -> impl Iterator<Item = &'static str> {
    funcs::FUNCS.iter().filter_map(|d| d.module)
}

#[cfg(test)]
mod tests;
