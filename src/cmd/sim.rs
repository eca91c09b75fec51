//! `simulate`: the built-in Zendesk as a local server.

use std::io::Write;

use super::demo;
use crate::cmd::exit;
use crate::config::cli::SimulateArgs;
use crate::config::ConfigError;
use crate::Error;

use super::cancel_on_signals;

/// `auditlake simulate`: serves until Ctrl-C; prints its base URL on stdout.
pub async fn simulate(args: &SimulateArgs) -> Result<u8, Error> {
    let sim_config = demo::simulator_config(args).map_err(ConfigError)?;
    let hidden_from = demo::simulator_hidden_from(args).map_err(ConfigError)?;
    let sim = zendesk_sim::Simulator::start(sim_config, args.bind)
        .await
        .map_err(|source| Error::Listen {
            addr: args.bind,
            source,
        })?;
    sim.hide_from(hidden_from);
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", sim.base_url());
        let _ = out.flush();
    }
    eprintln!(
        "simulating {} audit logs on {} (OAuth token {:?}; OAuth client {:?} with secret {:?} at /oauth/tokens); Ctrl-C stops",
        sim.account().len(),
        sim.base_url(),
        args.token,
        args.client_id,
        args.client_secret
    );
    cancel_on_signals().cancelled().await;
    sim.stop().await;
    Ok(exit::OK)
}
