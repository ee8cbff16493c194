//! Container names: validation and Docker-style random names (`adjective_scientist`).

use rand::seq::SliceRandom;

const ADJECTIVES: &[&str] = &[
    "admiring", "agitated", "amazing", "blissful", "bold", "brave", "busy", "charming", "clever",
    "cool", "compassionate", "dazzling", "determined", "eager", "ecstatic", "elegant", "epic",
    "festive", "focused", "friendly", "gallant", "gifted", "goofy", "happy", "hopeful", "jolly",
    "keen", "kind", "laughing", "loving", "lucid", "magical", "modest", "nice", "nostalgic",
    "objective", "optimistic", "peaceful", "pensive", "practical", "quirky", "relaxed", "serene",
    "sharp", "silly", "stoic", "strange", "sweet", "tender", "trusting", "upbeat", "vibrant",
    "wizardly", "wonderful", "youthful", "zealous",
];

const SURNAMES: &[&str] = &[
    "albattani", "archimedes", "babbage", "bardeen", "bell", "bohr", "borg", "cannon", "curie",
    "darwin", "dijkstra", "einstein", "euclid", "euler", "faraday", "fermat", "feynman", "galileo",
    "gauss", "goldberg", "hamilton", "hawking", "hopper", "hypatia", "johnson", "kepler",
    "knuth", "lamport", "liskov", "lovelace", "maxwell", "meitner", "mendel", "morse", "newton",
    "noether", "pare", "pascal", "pike", "ritchie", "shannon", "swanson", "tesla", "thompson",
    "torvalds", "turing", "volhard", "wilson", "wozniak", "wright", "yalow",
];

/// A random `adjective_surname`; `attempt` > 0 appends a digit as Docker does on collision.
pub fn random(attempt: u32) -> String {
    let mut rng = rand::thread_rng();
    let adjective = ADJECTIVES.choose(&mut rng).copied().unwrap_or("eager");
    let surname = SURNAMES.choose(&mut rng).copied().unwrap_or("turing");
    match attempt {
        0 => format!("{adjective}_{surname}"),
        n => format!("{adjective}_{surname}{n}"),
    }
}

/// Checks a user-given name against Docker's rule `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn validate(name: &str) -> Result<String, String> {
    let bare = name.strip_prefix('/').unwrap_or(name);
    let mut chars = bare.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.clone().count() >= 1
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if first_ok && rest_ok {
        Ok(bare.to_string())
    } else {
        Err(format!("Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_like_docker() {
        assert_eq!(validate("/web-1").unwrap(), "web-1");
        assert_eq!(validate("a.b_c").unwrap(), "a.b_c");
        assert!(validate("a").is_err());
        assert!(validate("-x").is_err());
        assert!(validate("bad name").is_err());
        assert!(validate("").is_err());
    }

    #[test]
    fn random_names_are_valid() {
        for n in 0..20 {
            assert!(validate(&random(n)).is_ok());
        }
    }
}
