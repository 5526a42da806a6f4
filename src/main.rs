fn main() {
    std::process::exit(godwit::cli::main());
}
