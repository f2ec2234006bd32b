//! The `soap-passwd` binary: parse the command line and run it.

fn main() -> std::process::ExitCode {
    soap_passwd::cli::main()
}
