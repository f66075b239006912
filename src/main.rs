fn main() -> std::process::ExitCode {
    mesero::cli::main()
}
