//! The RESP encoder and parser against hand-written wire bytes.

#![allow(non_snake_case)]

use super::*;

fn complete(value: RespValue, consumed: usize) -> Result<Parsed, String> {
    Ok(Parsed::Complete { value, consumed })
}

#[test]
fn encode_command__when_given_arguments__then_writes_an_array_of_bulk_strings() {
    // given
    let args: [&[u8]; 3] = [b"SET", b"key", b""];

    // when
    let encoded = encode_command(&args);

    // then
    assert_eq!(encoded, b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$0\r\n\r\n");
}

#[test]
fn parse__when_buffer_holds_each_resp2_type__then_returns_the_value_and_its_length() {
    // given
    let cases: [(&[u8], RespValue); 8] = [
        (b"+PONG\r\n", RespValue::Simple("PONG".to_owned())),
        (b"-ERR wrong\r\n", RespValue::Error("ERR wrong".to_owned())),
        (b":-42\r\n", RespValue::Integer(-42)),
        (b"$5\r\na\r\nbc\r\n", RespValue::bulk("a\r\nbc")),
        (b"$0\r\n\r\n", RespValue::bulk("")),
        (b"$-1\r\n", RespValue::Null),
        (b"*-1\r\n", RespValue::Null),
        (b"*0\r\n", RespValue::Array(Vec::new())),
    ];

    for (bytes, expected) in cases {
        // when
        let parsed = parse(bytes);

        // then
        assert_eq!(parsed, complete(expected, bytes.len()), "input {bytes:?}");
    }
}

#[test]
fn parse__when_arrays_nest__then_returns_the_tree_and_stops_at_its_end() {
    // given
    let bytes = b"*3\r\n:1\r\n*2\r\n$1\r\nx\r\n$-1\r\n+OK\r\n:99\r\n";

    // when
    let parsed = parse(bytes);

    // then
    let expected = RespValue::Array(vec![
        RespValue::Integer(1),
        RespValue::Array(vec![RespValue::bulk("x"), RespValue::Null]),
        RespValue::Simple("OK".to_owned()),
    ]);
    assert_eq!(parsed, complete(expected, bytes.len() - b":99\r\n".len()));
}

#[test]
fn parse__when_reply_is_cut_anywhere__then_reports_incomplete() {
    // given
    let whole = b"*2\r\n$3\r\nfoo\r\n*1\r\n:7\r\n";

    for cut in 0..whole.len() {
        // when
        let parsed = parse(&whole[..cut]);

        // then
        assert_eq!(parsed, Ok(Parsed::Incomplete), "cut at {cut}");
    }
    assert!(matches!(parse(whole), Ok(Parsed::Complete { .. })));
}

#[test]
fn parse__when_bytes_are_not_resp2__then_returns_an_error() {
    // given
    let cases: [&[u8]; 6] = [
        b"?x\r\n",
        b"\r\n",
        b":12a\r\n",
        b"$-2\r\n",
        b"$3\r\nfooXY",
        b"*1\r\n!\r\n",
    ];

    for bytes in cases {
        // when
        let parsed = parse(bytes);

        // then
        assert!(parsed.is_err(), "input {bytes:?} parsed as {parsed:?}");
    }
}
