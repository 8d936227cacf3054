//! `kubectl-nadipam`: the kubectl plugin (`kubectl nadipam who <ip>`, `pod`, `usage`, `orphans`,
//! `completion`). Put it on PATH; see docs/kubectl-plugin.md.

fn main() -> std::process::ExitCode {
    nadipam::kubectl::main()
}
