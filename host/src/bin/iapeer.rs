fn main() -> std::process::ExitCode {
    iapeer::cli::iapeer_main()
}
