fn main() -> std::process::ExitCode {
    greenhouse_sync::allocator::tune();
    greenhouse_sync::cli::main()
}
