fn main() {
    let root = std::path::Path::new("/tmp/berth-perf");
    let _ = std::fs::remove_dir_all(root);
    std::fs::create_dir_all(root).unwrap();
    let db = std::sync::Arc::new(redb::Database::create(root.join("db")).unwrap());
    let store = berth_store::Store::open(&root.join("r"), db).unwrap();
    let path = std::env::args().nth(1).unwrap();
    let mut f = std::fs::File::open(path).unwrap();
    let t = std::time::Instant::now();
    let img = store.import(&mut f, Default::default()).unwrap();
    println!("{} size={} in {:?}", img.id, img.size, t.elapsed());
}
