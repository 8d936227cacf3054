//! `completion bash|zsh|fish`: a completion script generated from the same clap definition as the parser,
//! so it never falls behind the flags.

use clap::CommandFactory;
use clap_complete::Shell;

use super::cli::Cli;

/// The script for `shell`, completing the `kubectl-nadipam` command.
pub(crate) fn script(shell: Shell) -> String {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "kubectl-nadipam", &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_know_the_subcommands_and_flags() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let s = script(shell);
            for word in [
                "who",
                "usage",
                "orphans",
                "reclaim-after",
                "kubeconfig",
                "kubectl-nadipam",
            ] {
                assert!(s.contains(word), "{shell}: no {word}");
            }
        }
    }
}
