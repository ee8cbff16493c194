//! `berth rmi`: removes images, printing what the daemon untagged and deleted.

use berth_api::models::ImageDeleteResponseItem;
use clap::Args;
use hyper::Method;

use crate::client::{self, Client, ClientError};
use crate::commands::{CmdResult, Failure};

/// `berth rmi`
#[derive(Debug, Clone, Args)]
pub struct RmiArgs {
    /// Force removal of the image
    #[arg(short = 'f', long = "force")]
    pub force: bool,
    /// Do not delete untagged parents
    #[arg(long = "no-prune")]
    pub no_prune: bool,
    /// The images to remove
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

/// `berth rmi`
pub async fn run(client: &Client, args: RmiArgs) -> CmdResult {
    let mut q = Vec::new();
    if args.force {
        q.push(("force", "1".to_string()));
    }
    if args.no_prune {
        q.push(("noprune", "1".to_string()));
    }
    let q = client::query(&q);
    // As docker's CLI: errors come after the removals, and with -f an image that is not
    // there is reported but does not fail the command.
    let mut errors = Vec::new();
    let mut failed = false;
    for image in &args.images {
        let path = format!("/images/{}{q}", client::enc_path(image));
        match client
            .json::<Vec<ImageDeleteResponseItem>>(Method::DELETE, &path, client::empty())
            .await
        {
            Ok(items) => {
                for item in items {
                    if let Some(u) = item.untagged {
                        println!("Untagged: {u}");
                    }
                    if let Some(d) = item.deleted {
                        println!("Deleted: {d}");
                    }
                }
            }
            Err(e @ ClientError::Connect { .. }) => return Err(Failure::from(e)),
            // docker's client reads any 404 here as a missing image.
            Err(e) if e.is_not_found() => {
                errors.push(format!("Error: No such image: {image}"));
                failed |= !args.force;
            }
            Err(e) => {
                errors.push(e.to_string());
                failed = true;
            }
        }
    }
    for e in &errors {
        eprintln!("{e}");
    }
    Ok(if failed { 1 } else { 0 })
}
