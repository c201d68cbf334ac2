//! `GET /chats/{chatId}/messages` paging (newest first, `limit`, `offset`,
//! `before`, `after`, `Link: rel="next"`) and `GET /chats` paging.

use std::collections::HashSet;

use missive_client::protocol::Message;
use missive_client::{ChatsQuery, MessagesQuery};
use uuid::Uuid;

use crate::helpers::{
    ALICE, BOB, CAROL, TestApp, TestUser, assert_error, assert_raw_error, seqs, spawn_app,
    walk_messages,
};

/// Alice sends `count` messages to Bob; returns both users and the messages in send order.
async fn chat_with_messages(app: &TestApp, count: usize) -> (TestUser, TestUser, Vec<Message>) {
    let alice = app.user(ALICE).await;
    let bob = app.user(BOB).await;
    let mut sent = Vec::with_capacity(count);
    for i in 0..count {
        sent.push(alice.send_to(BOB, &format!("message {i}")).await);
    }
    (alice, bob, sent)
}

/// `seq` values from `high` down to `low`, inclusive.
fn down(high: i64, low: i64) -> Vec<i64> {
    (low..=high).rev().collect()
}

#[tokio::test]
async fn message_pages_walk_every_message_exactly_once_newest_first() {
    let app = spawn_app().await;
    let (alice, _bob, sent) = chat_with_messages(&app, 120).await;
    let chat_id = sent[0].chat_id;

    let first = alice
        .client
        .list_messages(chat_id, &MessagesQuery::default())
        .await
        .expect("listed");
    assert_eq!(first.status, 200);
    assert_eq!(seqs(&first.body), down(120, 71), "the newest 50 by default");
    assert!(first.next.is_some(), "a Link to the next page");
    let link = first
        .headers
        .get("link")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    assert!(
        link.starts_with(&format!("</chats/{chat_id}/messages?"))
            && link.ends_with(r#"; rel="next""#),
        "a relative Link: {link:?}"
    );
    let pages = walk_messages(&alice.client, first, 10).await;

    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![50, 50, 20]);
    let walked: Vec<Message> = pages.into_iter().flatten().collect();
    assert_eq!(seqs(&walked), down(120, 1));
    let ids: Vec<Uuid> = walked.iter().map(|m| m.id).collect();
    let unique: HashSet<Uuid> = ids.iter().copied().collect();
    assert_eq!(unique.len(), 120, "every id exactly once");
    let expected: Vec<Uuid> = sent.iter().rev().map(|m| m.id).collect();
    assert_eq!(ids, expected);
}

#[tokio::test]
async fn a_limit_covering_every_message_has_no_link() {
    let app = spawn_app().await;
    let (alice, _bob, sent) = chat_with_messages(&app, 120).await;

    let page = alice
        .client
        .list_messages(
            sent[0].chat_id,
            &MessagesQuery {
                limit: Some(200),
                ..MessagesQuery::default()
            },
        )
        .await
        .expect("listed");

    assert_eq!(seqs(&page.body), down(120, 1));
    assert!(page.next.is_none(), "no Link on the last page");
    assert!(page.headers.get("link").is_none());
}

#[tokio::test]
async fn a_page_that_ends_exactly_at_the_oldest_message_has_no_link() {
    let app = spawn_app().await;
    let (alice, _bob, sent) = chat_with_messages(&app, 10).await;

    let page = alice
        .client
        .list_messages(
            sent[0].chat_id,
            &MessagesQuery {
                limit: Some(5),
                before: Some(sent[5].id),
                ..MessagesQuery::default()
            },
        )
        .await
        .expect("listed");

    assert_eq!(seqs(&page.body), down(5, 1));
    assert!(page.next.is_none(), "no Link when nothing older remains");
}

#[tokio::test]
async fn offset_skips_that_many_from_the_newest() {
    let app = spawn_app().await;
    let (alice, _bob, sent) = chat_with_messages(&app, 120).await;

    let page = alice
        .client
        .list_messages(
            sent[0].chat_id,
            &MessagesQuery {
                limit: Some(5),
                offset: Some(10),
                ..MessagesQuery::default()
            },
        )
        .await
        .expect("listed");
    let past_the_end = alice
        .client
        .list_messages(
            sent[0].chat_id,
            &MessagesQuery {
                offset: Some(500),
                ..MessagesQuery::default()
            },
        )
        .await
        .expect("listed");

    assert_eq!(seqs(&page.body), down(110, 106));
    assert!(page.next.is_some());
    assert!(past_the_end.body.is_empty());
    assert!(past_the_end.next.is_none());
}

#[tokio::test]
async fn offset_pages_walk_by_link_too() {
    let app = spawn_app().await;
    let (alice, _bob, sent) = chat_with_messages(&app, 12).await;

    let first = alice
        .client
        .list_messages(
            sent[0].chat_id,
            &MessagesQuery {
                limit: Some(5),
                offset: Some(2),
                ..MessagesQuery::default()
            },
        )
        .await
        .expect("listed");
    let pages = walk_messages(&alice.client, first, 10).await;

    let walked: Vec<Message> = pages.into_iter().flatten().collect();
    assert_eq!(seqs(&walked), down(10, 1));
}

#[tokio::test]
async fn before_lists_the_messages_immediately_older() {
    let app = spawn_app().await;
    let (alice, _bob, sent) = chat_with_messages(&app, 120).await;
    let pivot = &sent[60]; // seq 61

    let page = alice
        .client
        .list_messages(
            pivot.chat_id,
            &MessagesQuery {
                limit: Some(10),
                before: Some(pivot.id),
                ..MessagesQuery::default()
            },
        )
        .await
        .expect("listed");
    let before_the_oldest = alice
        .client
        .list_messages(
            pivot.chat_id,
            &MessagesQuery {
                before: Some(sent[0].id),
                ..MessagesQuery::default()
            },
        )
        .await
        .expect("listed");

    assert_eq!(seqs(&page.body), down(60, 51));
    assert!(page.next.is_some());
    assert!(before_the_oldest.body.is_empty());
    assert!(before_the_oldest.next.is_none());
}

#[tokio::test]
async fn after_lists_the_messages_immediately_newer_newest_first() {
    let app = spawn_app().await;
    let (alice, _bob, sent) = chat_with_messages(&app, 120).await;
    let pivot = &sent[19]; // seq 20

    let page = alice
        .client
        .list_messages(
            pivot.chat_id,
            &MessagesQuery {
                limit: Some(10),
                after: Some(pivot.id),
                ..MessagesQuery::default()
            },
        )
        .await
        .expect("listed");
    let after_the_newest = alice
        .client
        .list_messages(
            pivot.chat_id,
            &MessagesQuery {
                after: Some(sent[119].id),
                ..MessagesQuery::default()
            },
        )
        .await
        .expect("listed");

    assert_eq!(seqs(&page.body), down(30, 21));
    assert!(after_the_newest.body.is_empty());
    assert!(after_the_newest.next.is_none());
}

#[tokio::test]
async fn after_pages_link_forward_to_newer_messages_until_caught_up() {
    let app = spawn_app().await;
    let (alice, _bob, sent) = chat_with_messages(&app, 120).await;

    let first = alice
        .client
        .list_messages(
            sent[0].chat_id,
            &MessagesQuery {
                limit: Some(50),
                after: Some(sent[0].id),
                ..MessagesQuery::default()
            },
        )
        .await
        .expect("listed");
    let pages = walk_messages(&alice.client, first, 10).await;

    let page_seqs: Vec<Vec<i64>> = pages.iter().map(|page| seqs(page)).collect();
    assert_eq!(
        page_seqs,
        vec![down(51, 2), down(101, 52), down(120, 102)],
        "catching up forward, each page newest first"
    );
}

#[tokio::test]
async fn bad_message_paging_parameters_return_400_invalid_parameter() {
    let app = spawn_app().await;
    let (alice, _bob, sent) = chat_with_messages(&app, 1).await;
    let chat_id = sent[0].chat_id;
    let cases = [
        ("limit=0", "limit below 1"),
        ("limit=201", "limit above 200"),
        ("limit=x", "limit not a number"),
        ("limit=1.5", "limit not an integer"),
        ("offset=x", "offset not a number"),
        ("offset=-1", "negative offset"),
        ("before=not-a-uuid", "before not a uuid"),
        ("after=not-a-uuid", "after not a uuid"),
    ];

    for (query, why) in cases {
        let raw = alice
            .client
            .raw(
                missive_client::Method::GET,
                &format!("/chats/{chat_id}/messages?{query}"),
                None,
                None,
            )
            .await
            .expect("the server answers");
        assert_eq!(raw.status, 400, "{why} ({query}): {}", raw.body);
        assert_raw_error(&raw, 400, "invalid_parameter");
    }
}

#[tokio::test]
async fn listing_messages_of_a_malformed_chat_id_returns_400_invalid_parameter() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;

    let raw = alice
        .client
        .raw(
            missive_client::Method::GET,
            "/chats/not-a-uuid/messages",
            None,
            None,
        )
        .await
        .expect("the server answers");

    assert_raw_error(&raw, 400, "invalid_parameter");
}

#[tokio::test]
async fn listing_messages_of_an_unknown_chat_returns_404_chat_not_found() {
    let app = spawn_app().await;
    let alice = app.user(ALICE).await;

    assert_error(
        alice
            .client
            .list_messages(Uuid::now_v7(), &MessagesQuery::default())
            .await,
        404,
        "chat_not_found",
    );
}

#[tokio::test]
async fn listing_messages_as_a_non_member_returns_404_chat_not_found() {
    let app = spawn_app().await;
    let (_alice, _bob, sent) = chat_with_messages(&app, 3).await;
    let carol = app.user(CAROL).await;
    let chat_id = sent[0].chat_id;

    assert_error(
        carol
            .client
            .list_messages(chat_id, &MessagesQuery::default())
            .await,
        404,
        "chat_not_found",
    );
    assert_error(
        app.client
            .list_messages(chat_id, &MessagesQuery::as_phone(CAROL))
            .await,
        404,
        "chat_not_found",
    );
}

#[tokio::test]
async fn a_member_may_list_messages_by_claimed_phone_number() {
    let app = spawn_app().await;
    let (_alice, _bob, sent) = chat_with_messages(&app, 3).await;

    let page = app
        .client
        .list_messages(sent[0].chat_id, &MessagesQuery::as_phone(ALICE))
        .await
        .expect("listed");

    assert_eq!(seqs(&page.body), vec![3, 2, 1]);
}

// ---- GET /chats paging ---------------------------------------------------------

/// Alice and `count` chats with fresh users, oldest first.
async fn user_with_chats(app: &TestApp, count: usize) -> (TestUser, Vec<Uuid>) {
    let alice = app.user(ALICE).await;
    let mut chats = Vec::with_capacity(count);
    for i in 0..count {
        let peer = format!("+1555000{i:04}");
        app.register(&peer).await;
        chats.push(alice.create_chat(&[ALICE, &peer]).await.id);
    }
    (alice, chats)
}

#[tokio::test]
async fn chat_pages_walk_every_chat_exactly_once_by_link() {
    let app = spawn_app().await;
    let (alice, created) = user_with_chats(&app, 7).await;

    let mut page = alice
        .client
        .list_chats(&ChatsQuery {
            limit: Some(3),
            ..ChatsQuery::default()
        })
        .await
        .expect("listed");
    let mut sizes = Vec::new();
    let mut walked = Vec::new();
    loop {
        sizes.push(page.body.len());
        walked.extend(page.body.iter().map(|chat| chat.id));
        match alice.client.follow_next(&page).await.expect("next page") {
            Some(next) => page = next,
            None => break,
        }
        assert!(sizes.len() < 10, "too many pages");
    }

    assert_eq!(sizes, vec![3, 3, 1]);
    let newest_first: Vec<Uuid> = created.iter().rev().copied().collect();
    assert_eq!(walked, newest_first);
}

#[tokio::test]
async fn chat_pages_by_before_cursor_and_by_offset_agree() {
    let app = spawn_app().await;
    let (alice, created) = user_with_chats(&app, 7).await;
    let newest_first: Vec<Uuid> = created.iter().rev().copied().collect();

    let by_cursor = alice
        .client
        .list_chats(&ChatsQuery {
            limit: Some(3),
            before: Some(newest_first[2]),
            ..ChatsQuery::default()
        })
        .await
        .expect("listed");
    let by_offset = alice
        .client
        .list_chats(&ChatsQuery {
            limit: Some(3),
            offset: Some(3),
            ..ChatsQuery::default()
        })
        .await
        .expect("listed");
    let last = alice
        .client
        .list_chats(&ChatsQuery {
            limit: Some(3),
            before: Some(newest_first[5]),
            ..ChatsQuery::default()
        })
        .await
        .expect("listed");

    let ids = |chats: &[missive_client::protocol::Chat]| -> Vec<Uuid> {
        chats.iter().map(|chat| chat.id).collect()
    };
    assert_eq!(ids(&by_cursor.body), newest_first[3..6].to_vec());
    assert_eq!(ids(&by_offset.body), newest_first[3..6].to_vec());
    assert!(by_cursor.next.is_some());
    assert_eq!(ids(&last.body), newest_first[6..].to_vec());
    assert!(last.next.is_none());
}

#[tokio::test]
async fn chat_pages_keep_the_claimed_identity_in_the_link() {
    let app = spawn_app().await;
    user_with_chats(&app, 3).await;

    let first = app
        .client
        .list_chats(&ChatsQuery {
            phone_number: Some(ALICE.into()),
            limit: Some(2),
            ..ChatsQuery::default()
        })
        .await
        .expect("listed");
    let second = app
        .client
        .follow_next(&first)
        .await
        .expect("next page")
        .expect("a Link");

    assert_eq!(first.body.len(), 2);
    assert_eq!(second.body.len(), 1);
    assert!(second.next.is_none());
}
