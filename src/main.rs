fn main() {
    println!("ovf-run: not yet");
}
