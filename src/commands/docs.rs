//! `completions SHELL` and `man`: generated from the command-line definitions themselves
//! (clap_complete, clap_mangen), so neither can drift from `--help`.

use clap::CommandFactory;

use crate::cli::{Cli, Shell};
use crate::error::{BadArgument, Exit, Failure};

pub fn completions(shell: Shell) -> Result<Exit, Failure> {
    let shell = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut cmd = Cli::command();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(shell, &mut cmd, "binfmt-setup", &mut out);
    Ok(Exit::Success)
}

pub fn man(command: Option<&str>) -> Result<Exit, Failure> {
    let top = Cli::command();
    let page = match command {
        None => top,
        Some(name) => {
            let known: Vec<String> = top
                .get_subcommands()
                .map(|c| c.get_name().to_string())
                .collect();
            let sub = top.find_subcommand(name).cloned().ok_or_else(|| {
                BadArgument(format!(
                    "no command {name}; the commands are {}",
                    known.join(", ")
                ))
            })?;
            // Named as man(1) pages of subcommands are: binfmt-setup-install(1).
            sub.name(format!("binfmt-setup-{name}"))
                .display_name(format!("binfmt-setup-{name}"))
                .version(top.get_version().unwrap_or_default().to_string())
        }
    };
    let mut out = std::io::stdout().lock();
    // A closed pipe (`| head`) is not worth an error.
    let _ = clap_mangen::Man::new(page).render(&mut out);
    Ok(Exit::Success)
}
