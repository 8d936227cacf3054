//! Writes nadipam's CRDs as YAML: `crdgen --out DIR` writes one file per CRD (what manifests/crds/ holds);
//! `crdgen` alone prints them all to stdout as one multi-document YAML stream.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(about = "Generate nadipam's CustomResourceDefinitions (nadipam.io/v1) as YAML")]
struct Args {
    /// Directory to write subnets.nadipam.io.yaml, ippools.nadipam.io.yaml and ipleases.nadipam.io.yaml into
    /// (created if missing). Without it, all CRDs go to stdout.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("crdgen: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let mut docs = Vec::new();
    for (file, crd) in nadipam::api::crds() {
        let yaml = nadipam::api::crd_yaml(&crd)
            .map_err(|e| format!("cannot render {file} as YAML: {e}"))?;
        docs.push((file, yaml));
    }
    let Some(dir) = &args.out else {
        let all: Vec<String> = docs.into_iter().map(|(_, y)| y).collect();
        print!("{}", all.join("---\n"));
        return Ok(());
    };
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("cannot create --out directory {}: {e}", dir.display()))?;
    for (file, yaml) in docs {
        let path = dir.join(file);
        std::fs::write(&path, yaml).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}
