use super::*;

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s.replace([' ', '\n'], "")).unwrap()
}

/// RFC 9497, A.1.2 (VOPRF mode, ristretto255-SHA512), test vector 1:
/// the key, its public half and the output of input 0x00 are the
/// RFC's, so the suite and mode are the standard ones.
#[test]
fn the_rfc_9497_voprf_vector_holds() {
    let sk = unhex("e6f73f344b79b379f1a0dd37e07ff62e38d9f71345ce62ae3a9bc60b04ccd909");
    let key = SecretKey::from_scalar(1, &sk).unwrap();
    assert_eq!(
        hex::encode(key.public().key),
        "c803e2cc6b05fc15064549b5920659ca4a77b2cca6f04f6b357009335476ad4e"
    );
    let out = key.server.evaluate(&[0]).unwrap();
    assert_eq!(
        hex::encode(out),
        "b58cfbe118e0cb94d79b5fd6a6dafb98764dff49c14e1770b566e42402da1a7da4d8527693914139caee5bd03903af43a491351d23b430948dd50cde10d32b3c"
    );
}

#[test]
fn a_blinded_evaluation_gives_the_holders_own_entry() {
    let (key, _) = SecretKey::generate(3).unwrap();
    let inputs = vec![
        input(SelectorKind::Passport, "X1234567"),
        input(SelectorKind::Phone, "+50255551234"),
    ];
    let blinded = Blinded::new(inputs).unwrap();
    let (evaluated, proof) = key.evaluate(&blinded.elements).unwrap();
    let evaluated: Vec<Vec<u8>> = evaluated.iter().map(|e| e.to_vec()).collect();
    let entries = blinded.finalize(&evaluated, &proof, &key.public()).unwrap();
    assert_eq!(
        entries,
        vec![
            key.output(SelectorKind::Passport, "X1234567").unwrap(),
            key.output(SelectorKind::Phone, "+50255551234").unwrap(),
        ]
    );
    // The blinded element is not the entry, nor stable across queries.
    let again = Blinded::new(vec![input(SelectorKind::Passport, "X1234567")]).unwrap();
    assert_ne!(again.elements[0], blinded.elements[0]);
}

#[test]
fn an_answer_made_with_another_key_fails_the_proof() {
    let (published, _) = SecretKey::generate(1).unwrap();
    let (other, _) = SecretKey::generate(1).unwrap();
    let blinded = Blinded::new(vec![input(SelectorKind::Passport, "X1234567")]).unwrap();
    let (evaluated, proof) = other.evaluate(&blinded.elements).unwrap();
    let evaluated: Vec<Vec<u8>> = evaluated.iter().map(|e| e.to_vec()).collect();
    let err = blinded
        .finalize(&evaluated, &proof, &published.public())
        .unwrap_err();
    assert!(matches!(err, OprfError::Proof { epoch: 1 }), "{err}");
    // And with the right key it verifies.
    assert!(
        blinded
            .finalize(&evaluated, &proof, &other.public())
            .is_ok()
    );
}

#[test]
fn garbage_elements_are_refused_before_any_work() {
    let (key, _) = SecretKey::generate(1).unwrap();
    let err = key.evaluate(&[vec![0xff; 32]]).unwrap_err();
    assert!(matches!(err, OprfError::Element { .. }), "{err}");
    let err = key.evaluate(&[vec![1; 31]]).unwrap_err();
    assert!(err.to_string().contains("(got 31)"), "{err}");
    assert!(PublicKey::parse(1, &[0xff; 32]).is_err());
    assert!(matches!(
        PublicKey::parse(0, &key.public().key),
        Err(OprfError::ZeroEpoch)
    ));
}

/// What a peer may send to be evaluated, checked without a key: a
/// blinded element passes, the identity, a non-canonical encoding and a
/// wrong length do not.
#[test]
fn check_blinded_takes_exactly_the_elements_a_key_evaluates() {
    let blinded = Blinded::new(vec![input(SelectorKind::Passport, "X1234567")]).unwrap();
    assert!(check_blinded(&blinded.elements[0]).is_ok());
    let err = check_blinded(&[0; 32]).unwrap_err();
    assert!(matches!(err, OprfError::Element { .. }), "identity: {err}");
    let err = check_blinded(&[0xff; 32]).unwrap_err();
    assert!(matches!(err, OprfError::Element { .. }), "{err}");
    let err = check_blinded(&blinded.elements[0][..31]).unwrap_err();
    assert!(
        matches!(err, OprfError::ElementLength { got: 31, .. }),
        "{err}"
    );
    let (key, _) = SecretKey::generate(1).unwrap();
    for b in [&blinded.elements[0][..], &[0; 32], &[0xff; 32]] {
        assert_eq!(
            check_blinded(b).is_ok(),
            key.evaluate(&[b.to_vec()]).is_ok()
        );
    }
}

#[test]
fn a_key_file_round_trips_and_a_bad_one_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (key, file) = SecretKey::generate(7).unwrap();
    let path = dir.path().join("oprf.key");
    crypto::write_private_file(&path, file.as_bytes(), false).unwrap();
    let loaded = SecretKey::load(&path).unwrap();
    assert_eq!(loaded.epoch(), 7);
    assert_eq!(loaded.public(), key.public());
    std::fs::write(&path, "enlace-oprf-key-v1 epoch=x AAAA\n").unwrap();
    let err = SecretKey::read(&path).unwrap_err().to_string();
    assert!(err.contains("epoch=N BASE64"), "{err}");
    assert!(!format!("{loaded:?}").contains(&file[25..40]));
}
