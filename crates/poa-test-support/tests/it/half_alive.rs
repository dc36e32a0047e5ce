//! The half-alive listener: accepts, counts, never answers, closes on drop.

#![allow(non_snake_case)]

use poa_test_support::{HalfAliveListener, RespError, resp, wait_for};

use crate::{HANG_GUARD, SILENCE, connect, is_timeout, read_line, send_ping};

#[test]
fn half_alive_listener__when_client_sends_ping__then_connects_but_never_answers() {
    // given
    let listener = HalfAliveListener::start();

    // when
    let reply = resp::request(listener.addr(), &[b"PING"], SILENCE);

    // then
    assert!(
        matches!(reply, Err(RespError::TimedOut { .. })),
        "got {reply:?}"
    );
    assert_eq!(listener.url(), format!("redis://{}", listener.addr()));
}

#[test]
fn accepted_connections__when_clients_connect__then_counts_each_and_keeps_it_open() {
    // given
    let listener = HalfAliveListener::start();

    // when
    let mut clients: Vec<_> = (0..3).map(|_| connect(listener.addr())).collect();

    // then
    assert!(wait_for(HANG_GUARD, || listener.accepted_connections() == 3));
    for client in &mut clients {
        send_ping(client);
        let silence = read_line(client, SILENCE).unwrap_err();
        assert!(
            is_timeout(&silence),
            "connection should stay open and silent: {silence:?}"
        );
    }
}

#[tokio::test]
async fn half_alive_listener__when_used_from_a_current_thread_runtime__then_async_request_times_out()
 {
    // given
    let listener = HalfAliveListener::start();

    // when
    let reply = resp::request_async(listener.addr(), &[b"PING"], SILENCE).await;

    // then
    assert!(
        matches!(reply, Err(RespError::TimedOut { .. })),
        "got {reply:?}"
    );
    assert!(wait_for(HANG_GUARD, || listener.accepted_connections() == 1));
}

#[test]
fn drop__when_listener_is_dropped__then_client_sees_its_connection_closed() {
    // given
    let listener = HalfAliveListener::start();
    let mut client = connect(listener.addr());
    assert!(wait_for(HANG_GUARD, || listener.accepted_connections() == 1));

    // when
    drop(listener);

    // then
    let closed = read_line(&mut client, HANG_GUARD).unwrap_err();
    assert!(
        !is_timeout(&closed),
        "connection should be closed, not silent: {closed:?}"
    );
}
