fn main() -> std::process::ExitCode {
    iapeer::daemon::iapeerd_main()
}
