//! Compiles `proto/csi.proto` and `proto/pluginregistration.proto` (the
//! kubelet's plugin registration API) into Rust at build time. protox
//! parses the protos in-process so no system `protoc` is needed on
//! developer or CI machines.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["proto/csi.proto", "proto/pluginregistration.proto"];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let fds = protox::compile(protos, ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
