fn main() -> std::process::ExitCode {
    greenhouse_sync::cli::main()
}
