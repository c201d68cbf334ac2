//! The `Store` contract, checked directly on every backend: each check is
//! written once, generic over `DynStore`, and `contract!` makes one test per
//! backend of it (`sqlite::<check>` and `postgres::<check>`). The PostgreSQL
//! tests run whatever `MISSIVE_TEST_STORE` says; without a reachable
//! PostgreSQL they are skipped loudly (or fail under
//! `MISSIVE_TEST_REQUIRE_SERVICES=1`).

use std::collections::HashSet;

use missive_protocol::{MessageStatus, User};
use missive_server::domain::{ClientMessageId, MessageContent, PhoneNumber};
use missive_server::store::{
    CodeAttempt, DynStore, LoginCode, MessageCursor, MessageQuery, NewMessage, NewUser, Redeemed,
    SendTarget, Sent, StoreError,
};
use uuid::Uuid;

use crate::test_db::TestDb;

/// Open options with a PostgreSQL pool of `size` connections.
fn pool(size: usize) -> missive_server::store::OpenOptions {
    missive_server::store::OpenOptions {
        pool_size: size,
        ..Default::default()
    }
}

/// Opens a store of `db` (the database is dropped with `db`, after the store).
async fn open(db: &TestDb) -> DynStore {
    missive_server::store::open(db.url(), pool(8))
        .await
        .expect("the store opens")
}

macro_rules! contract {
    ($($check:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $check() {
                    let db = crate::test_db::TestDb::sqlite();
                    let store = super::open(&db).await;
                    super::$check(store.clone()).await;
                    store.close().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $check() {
                    let Some(db) = crate::test_db::TestDb::postgres().await else {
                        return;
                    };
                    let store = super::open(&db).await;
                    super::$check(store.clone()).await;
                    store.close().await;
                }
            )*
        }
    };
}

contract!(
    users_are_found_by_phone_id_and_token,
    a_taken_phone_number_is_phone_taken_even_when_registrations_race,
    tokens_are_added_looked_up_and_revoked,
    login_codes_are_redeemed_once_expire_and_burn,
    a_pair_has_one_direct_chat_even_when_creations_race,
    messages_list_newest_first_with_before_after_offset_and_more,
    a_repeated_client_message_id_stores_one_message,
    a_client_message_id_reused_for_another_chat_or_content_is_a_conflict,
    watermarks_never_move_backwards,
    concurrent_sends_to_one_recipient_number_its_events_without_gaps,
    sessions_are_listed_by_last_use_touched_forward_and_revoked_by_their_owner_only,
    pruning_removes_expired_and_revoked_tokens_and_expired_codes_once,
    queued_sends_are_stored_in_queue_order,
    a_refused_send_does_not_spoil_the_others_queued_with_it,
);

fn phone(n: usize) -> PhoneNumber {
    PhoneNumber::parse(&format!("+1555{n:07}")).expect("a valid phone number")
}

async fn user(store: &DynStore, n: usize) -> User {
    store
        .create_user(NewUser {
            phone_number: phone(n),
            display_name: Some(format!("user {n}")),
            token_hash: format!("token-of-{n}"),
            user_agent: None,
        })
        .await
        .expect("the user is created")
}

/// The user of a token that is not revoked, by its hash.
async fn token_user(store: &DynStore, hash: &str) -> Option<User> {
    store
        .session_by_token(hash)
        .await
        .expect("reads")
        .map(|s| s.user)
}

fn message(sender: &User, target: SendTarget, content: &str, key: Option<&str>) -> NewMessage {
    NewMessage {
        sender: sender.clone(),
        target,
        content: MessageContent::parse(content.to_owned()).expect("valid content"),
        client_message_id: key.map(|k| ClientMessageId::parse(k.to_owned()).expect("a valid key")),
        push: None,
    }
}

async fn send(store: &DynStore, sender: &User, to: &User, content: &str) -> Sent {
    store
        .send_message(message(sender, SendTarget::Direct(to.id), content, None))
        .await
        .expect("the send is stored")
}

fn query(limit: u32, offset: u32, cursor: MessageCursor) -> MessageQuery {
    MessageQuery {
        limit,
        offset,
        cursor,
    }
}

async fn users_are_found_by_phone_id_and_token(store: DynStore) {
    let alice = user(&store, 1).await;
    assert_eq!(alice.phone_number, phone(1).as_str());
    assert_eq!(alice.display_name.as_deref(), Some("user 1"));

    let by_phone = store.user_by_phone(&phone(1)).await.expect("reads");
    let by_id = store.user_by_id(alice.id).await.expect("reads");
    let by_token = token_user(&store, "token-of-1").await;

    assert_eq!(by_phone.as_ref(), Some(&alice));
    assert_eq!(by_id.as_ref(), Some(&alice));
    assert_eq!(by_token.as_ref(), Some(&alice));
    assert_eq!(store.user_by_phone(&phone(2)).await.expect("reads"), None);
    assert_eq!(store.user_by_id(Uuid::now_v7()).await.expect("reads"), None);
    assert_eq!(token_user(&store, "nope").await, None);
    assert_eq!(store.event_cursor(alice.id).await.expect("reads"), 0);
    assert!(matches!(
        store.event_cursor(Uuid::now_v7()).await,
        Err(StoreError::UserNotFound)
    ));
}

async fn a_taken_phone_number_is_phone_taken_even_when_registrations_race(store: DynStore) {
    user(&store, 1).await;
    let again = store
        .create_user(NewUser {
            phone_number: phone(1),
            display_name: None,
            token_hash: "another".into(),
            user_agent: None,
        })
        .await;
    assert!(matches!(again, Err(StoreError::PhoneTaken)), "{again:?}");

    let racers = (0..16).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .create_user(NewUser {
                    phone_number: phone(2),
                    display_name: None,
                    token_hash: format!("racer-{i}"),
                    user_agent: None,
                })
                .await
        })
    });
    let results = futures_util::future::join_all(racers).await;
    let (won, lost): (Vec<_>, Vec<_>) = results
        .into_iter()
        .map(|r| r.expect("the task runs"))
        .partition(Result::is_ok);
    assert_eq!(won.len(), 1, "exactly one registration wins");
    assert!(
        lost.iter()
            .all(|r| matches!(r, Err(StoreError::PhoneTaken))),
        "{lost:?}"
    );
}

async fn tokens_are_added_looked_up_and_revoked(store: DynStore) {
    let alice = user(&store, 1).await;
    store
        .add_token(alice.id, "second".into(), Some("agent".into()))
        .await
        .expect("added");
    assert_eq!(token_user(&store, "second").await, Some(alice.clone()));

    assert!(store.revoke_token("second").await.expect("revokes"));
    assert!(!store.revoke_token("second").await.expect("revokes"));
    assert!(!store.revoke_token("unknown").await.expect("revokes"));
    assert_eq!(token_user(&store, "second").await, None);
    assert_eq!(
        token_user(&store, "token-of-1").await,
        Some(alice),
        "the other token still works"
    );
}

async fn login_codes_are_redeemed_once_expire_and_burn(store: DynStore) {
    let alice = user(&store, 1).await;
    let code = |hash: &str, expires_at| LoginCode {
        user: alice.id,
        phone_number: alice.phone_number.clone(),
        code_hash: hash.into(),
        expires_at,
    };
    let attempt = |hash: &str, now, token: &str| CodeAttempt {
        phone_number: alice.phone_number.clone(),
        code_hash: hash.into(),
        now,
        token_hash: token.into(),
        user_agent: Some("phone".into()),
        max_attempts: 3,
    };

    store
        .put_login_code(code("right", 1_000))
        .await
        .expect("put");
    assert_eq!(
        store
            .redeem_login_code(attempt("wrong", 10, "t1"))
            .await
            .expect("judged"),
        Redeemed::Invalid
    );
    assert_eq!(
        store
            .redeem_login_code(attempt("right", 10, "t1"))
            .await
            .expect("judged"),
        Redeemed::Valid(alice.clone())
    );
    assert_eq!(token_user(&store, "t1").await, Some(alice.clone()));
    assert_eq!(
        store
            .redeem_login_code(attempt("right", 10, "t2"))
            .await
            .expect("judged"),
        Redeemed::Invalid,
        "a code works once"
    );

    store
        .put_login_code(code("right", 1_000))
        .await
        .expect("put");
    assert_eq!(
        store
            .redeem_login_code(attempt("right", 1_000, "t3"))
            .await
            .expect("judged"),
        Redeemed::Invalid,
        "expired"
    );

    store
        .put_login_code(code("right", 1_000))
        .await
        .expect("put");
    for _ in 0..3 {
        store
            .redeem_login_code(attempt("wrong", 10, "t4"))
            .await
            .expect("judged");
    }
    assert_eq!(
        store
            .redeem_login_code(attempt("right", 10, "t4"))
            .await
            .expect("judged"),
        Redeemed::TooManyAttempts
    );
    assert_eq!(token_user(&store, "t4").await, None);

    // A new code resets the count.
    store
        .put_login_code(code("again", 1_000))
        .await
        .expect("put");
    assert_eq!(
        store
            .redeem_login_code(attempt("again", 10, "t5"))
            .await
            .expect("judged"),
        Redeemed::Valid(alice)
    );
}

async fn a_pair_has_one_direct_chat_even_when_creations_race(store: DynStore) {
    let (a, b, c) = (
        user(&store, 1).await,
        user(&store, 2).await,
        user(&store, 3).await,
    );
    let (first, created) = store
        .create_chat(vec![a.id, b.id], Some(a.id))
        .await
        .expect("created");
    assert!(created);
    assert_eq!(first.member_ids, vec![a.id, b.id]);
    let (second, created) = store
        .create_chat(vec![b.id, a.id], Some(b.id))
        .await
        .expect("found");
    assert!(!created);
    assert_eq!(second.chat.id, first.chat.id);

    let racers = (0..16).map(|i| {
        let store = store.clone();
        let pair = if i % 2 == 0 {
            vec![a.id, c.id]
        } else {
            vec![c.id, a.id]
        };
        tokio::spawn(async move { store.create_chat(pair, None).await })
    });
    let results: Vec<_> = futures_util::future::join_all(racers)
        .await
        .into_iter()
        .map(|r| r.expect("the task runs").expect("created or found"))
        .collect();
    let ids: HashSet<Uuid> = results.iter().map(|(view, _)| view.chat.id).collect();
    assert_eq!(ids.len(), 1, "one chat for the pair");
    assert_eq!(results.iter().filter(|(_, created)| *created).count(), 1);

    let (group, created) = store
        .create_chat(vec![a.id, b.id, c.id], None)
        .await
        .expect("created");
    let (other, _) = store
        .create_chat(vec![a.id, b.id, c.id], None)
        .await
        .expect("created");
    assert!(created);
    assert_ne!(group.chat.id, other.chat.id, "groups are always new");
    assert!(matches!(
        store.chat(group.chat.id, Some(Uuid::now_v7())).await,
        Err(StoreError::ChatNotFound)
    ));
}

async fn messages_list_newest_first_with_before_after_offset_and_more(store: DynStore) {
    let (a, b) = (user(&store, 1).await, user(&store, 2).await);
    let mut sent = Vec::new();
    for i in 1..=5 {
        sent.push(send(&store, &a, &b, &format!("m{i}")).await.message);
    }
    let chat = sent[0].chat_id;
    assert_eq!(
        sent.iter().map(|m| m.seq).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );
    let seqs = |page: &missive_server::store::Page<missive_protocol::Message>| {
        page.items.iter().map(|m| m.seq).collect::<Vec<_>>()
    };

    let (newest, _) = store
        .list_messages(chat, Some(a.id), query(2, 0, MessageCursor::Newest))
        .await
        .expect("listed");
    assert_eq!((seqs(&newest), newest.more), (vec![5, 4], true));

    let (before, _) = store
        .list_messages(
            chat,
            Some(a.id),
            query(2, 0, MessageCursor::Before(sent[3].id)),
        )
        .await
        .expect("listed");
    assert_eq!((seqs(&before), before.more), (vec![3, 2], true));

    let (after, _) = store
        .list_messages(
            chat,
            Some(a.id),
            query(2, 0, MessageCursor::After(sent[1].id)),
        )
        .await
        .expect("listed");
    assert_eq!((seqs(&after), after.more), (vec![4, 3], true));

    let (offset, _) = store
        .list_messages(chat, Some(a.id), query(3, 3, MessageCursor::Newest))
        .await
        .expect("listed");
    assert_eq!((seqs(&offset), offset.more), (vec![2, 1], false));

    assert!(matches!(
        store
            .list_messages(
                chat,
                Some(a.id),
                query(2, 0, MessageCursor::Before(Uuid::now_v7()))
            )
            .await,
        Err(StoreError::InvalidCursor)
    ));
    let outsider = user(&store, 3).await;
    assert!(matches!(
        store
            .list_messages(chat, Some(outsider.id), query(2, 0, MessageCursor::Newest))
            .await,
        Err(StoreError::ChatNotFound)
    ));

    // The recipient reading the page has received it.
    let (read, receipt) = store
        .list_messages(chat, Some(b.id), query(2, 0, MessageCursor::Newest))
        .await
        .expect("listed");
    assert!(
        read.items
            .iter()
            .all(|m| m.status == MessageStatus::Delivered)
    );
    assert_eq!(receipt.expect("a receipt").targets.len(), 1);

    let chats = store
        .list_chats(
            a.id,
            missive_server::store::ChatQuery {
                limit: 10,
                offset: 0,
                before: None,
            },
        )
        .await
        .expect("listed");
    assert_eq!(chats.items.len(), 1);
    assert_eq!(
        chats.items[0]
            .last_message
            .as_ref()
            .map(|m| m.content.as_str()),
        Some("m5")
    );
}

async fn a_repeated_client_message_id_stores_one_message(store: DynStore) {
    let (a, b) = (user(&store, 1).await, user(&store, 2).await);
    let first = store
        .send_message(message(&a, SendTarget::Direct(b.id), "hi", Some("k1")))
        .await
        .expect("stored");
    let again = store
        .send_message(message(&a, SendTarget::Direct(b.id), "hi", Some("k1")))
        .await
        .expect("stored");
    assert!(!first.duplicate);
    assert!(again.duplicate);
    assert!(again.targets.is_empty(), "a repeat tells nobody");
    assert_eq!(again.message.id, first.message.id);

    // Racing repeats of one new key, queued at once: one message.
    let racers = (0..12).map(|_| {
        let store = store.clone();
        let new = message(&a, SendTarget::Direct(b.id), "race", Some("k2"));
        tokio::spawn(async move { store.send_message(new).await })
    });
    let results: Vec<Sent> = futures_util::future::join_all(racers)
        .await
        .into_iter()
        .map(|r| r.expect("the task runs").expect("stored"))
        .collect();
    let ids: HashSet<Uuid> = results.iter().map(|s| s.message.id).collect();
    assert_eq!(ids.len(), 1);
    assert_eq!(results.iter().filter(|s| !s.duplicate).count(), 1);
    let (page, _) = store
        .list_messages(
            first.message.chat_id,
            Some(a.id),
            query(50, 0, MessageCursor::Newest),
        )
        .await
        .expect("listed");
    assert_eq!(page.items.len(), 2, "hi and race, once each");
    assert_eq!(store.event_cursor(b.id).await.expect("reads"), 2);
}

async fn a_client_message_id_reused_for_another_chat_or_content_is_a_conflict(store: DynStore) {
    let (a, b, c) = (
        user(&store, 1).await,
        user(&store, 2).await,
        user(&store, 3).await,
    );
    let (group, _) = store
        .create_chat(vec![a.id, b.id, c.id], None)
        .await
        .expect("created");
    let first = store
        .send_message(message(&a, SendTarget::Direct(b.id), "hi", Some("k1")))
        .await
        .expect("stored");
    let chat = first.message.chat_id;

    // Exact repeats, naming the 1:1 chat by the pair or by its id.
    for target in [SendTarget::Direct(b.id), SendTarget::Chat(chat)] {
        let again = store
            .send_message(message(&a, target, "hi", Some("k1")))
            .await
            .expect("a repeat is answered");
        assert!(again.duplicate);
        assert_eq!(again.message.id, first.message.id);
    }

    // Reuses: other content, another pair, a group, a chat that does not
    // exist (the key is checked before the chat, on every backend).
    let reuses = [
        (SendTarget::Direct(b.id), "other content"),
        (SendTarget::Chat(chat), "other content"),
        (SendTarget::Direct(c.id), "hi"),
        (SendTarget::Chat(group.chat.id), "hi"),
        (SendTarget::Chat(Uuid::now_v7()), "hi"),
    ];
    for (target, content) in reuses {
        let outcome = store
            .send_message(message(&a, target, content, Some("k1")))
            .await;
        assert!(
            matches!(outcome, Err(StoreError::IdempotencyConflict)),
            "{target:?} {content:?}: {outcome:?}"
        );
    }
    // Nothing was stored, nobody was told, no 1:1 chat of a and c was made.
    let (page, _) = store
        .list_messages(chat, Some(a.id), query(50, 0, MessageCursor::Newest))
        .await
        .expect("listed");
    assert_eq!(page.items.len(), 1);
    assert_eq!(store.event_cursor(b.id).await.expect("reads"), 1);
    assert_eq!(store.event_cursor(c.id).await.expect("reads"), 0);
    let chats_of_c = store
        .list_chats(
            c.id,
            missive_server::store::ChatQuery {
                limit: 10,
                offset: 0,
                before: None,
            },
        )
        .await
        .expect("listed");
    assert_eq!(chats_of_c.items.len(), 1, "only the group");

    // A new key queued twice back to back (most likely one batch) with
    // different content: the first is stored, the second refused.
    let one = store
        .queue_message(message(&a, SendTarget::Direct(b.id), "x", Some("k2")))
        .await
        .expect("queued");
    let two = store
        .queue_message(message(&a, SendTarget::Direct(b.id), "y", Some("k2")))
        .await
        .expect("queued");
    let three = store
        .queue_message(message(&a, SendTarget::Direct(b.id), "x", Some("k2")))
        .await
        .expect("queued");
    let one = one.await.expect("stored");
    assert!(!one.duplicate);
    assert!(matches!(two.await, Err(StoreError::IdempotencyConflict)));
    let three = three.await.expect("a repeat is answered");
    assert!(three.duplicate);
    assert_eq!(three.message.id, one.message.id);
    assert_eq!(store.event_cursor(b.id).await.expect("reads"), 2);
}

async fn watermarks_never_move_backwards(store: DynStore) {
    let (a, b) = (user(&store, 1).await, user(&store, 2).await);
    let mut sent = Vec::new();
    for i in 0..4 {
        sent.push(send(&store, &a, &b, &format!("m{i}")).await.message);
    }
    let chat = sent[0].chat_id;

    let read = store
        .mark_status(chat, b.id, sent[2].id, MessageStatus::Read)
        .await
        .expect("marked");
    assert_eq!(read.targets.len(), 1, "the sender hears of it");
    let older = store
        .mark_status(chat, b.id, sent[0].id, MessageStatus::Delivered)
        .await
        .expect("marked");
    assert!(older.targets.is_empty(), "nothing moved, nobody told");
    let same = store
        .mark_status(chat, b.id, sent[1].id, MessageStatus::Read)
        .await
        .expect("marked");
    assert!(same.targets.is_empty());

    let (page, _) = store
        .list_messages(chat, Some(a.id), query(10, 0, MessageCursor::Newest))
        .await
        .expect("listed");
    let statuses: Vec<_> = page.items.iter().map(|m| (m.seq, m.status)).collect();
    assert_eq!(
        statuses,
        vec![
            (4, MessageStatus::Sent),
            (3, MessageStatus::Read),
            (2, MessageStatus::Read),
            (1, MessageStatus::Read),
        ]
    );
    assert!(matches!(
        store
            .mark_status(chat, b.id, Uuid::now_v7(), MessageStatus::Read)
            .await,
        Err(StoreError::MessageNotFound)
    ));
}

async fn concurrent_sends_to_one_recipient_number_its_events_without_gaps(store: DynStore) {
    const SENDERS: usize = 8;
    const EACH: usize = 25;
    let hub = user(&store, 0).await;
    let mut senders = Vec::new();
    for i in 1..=SENDERS {
        senders.push(user(&store, i).await);
    }
    let tasks = senders.into_iter().map(|sender| {
        let store = store.clone();
        let hub = hub.clone();
        tokio::spawn(async move {
            for i in 0..EACH {
                store
                    .send_message(message(
                        &sender,
                        SendTarget::Direct(hub.id),
                        &format!("{i}"),
                        None,
                    ))
                    .await
                    .expect("stored");
            }
        })
    });
    for task in futures_util::future::join_all(tasks).await {
        task.expect("the sender runs");
    }

    let total = (SENDERS * EACH) as i64;
    let events = store
        .events_since(hub.id, 0, 1_000)
        .await
        .expect("the log reads");
    let numbers: Vec<i64> = events.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        numbers,
        (1..=total).collect::<Vec<_>>(),
        "gap-free, in order"
    );
    assert_eq!(store.event_cursor(hub.id).await.expect("reads"), total);
    let tail = store
        .events_since(hub.id, total - 3, 10)
        .await
        .expect("reads");
    assert_eq!(
        tail.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        vec![total - 2, total - 1, total]
    );
}

async fn queued_sends_are_stored_in_queue_order(store: DynStore) {
    let (a, b) = (user(&store, 1).await, user(&store, 2).await);
    let mut pending = Vec::new();
    for i in 0..50 {
        pending.push(
            store
                .queue_message(message(&a, SendTarget::Direct(b.id), &format!("{i}"), None))
                .await
                .expect("queued"),
        );
    }
    let mut seqs = Vec::new();
    let mut cursors = Vec::new();
    for committing in pending {
        let sent = committing.await.expect("stored");
        seqs.push(sent.message.seq);
        let (_, cursor) = sent
            .targets
            .iter()
            .find(|(user, _)| *user == b.id)
            .copied()
            .expect("the recipient is a target");
        cursors.push(cursor);
    }
    assert_eq!(seqs, (1..=50).collect::<Vec<_>>());
    assert_eq!(cursors, (1..=50).collect::<Vec<_>>());
}

async fn a_refused_send_does_not_spoil_the_others_queued_with_it(store: DynStore) {
    let (a, b, c) = (
        user(&store, 1).await,
        user(&store, 2).await,
        user(&store, 3).await,
    );
    let (bc, _) = store
        .create_chat(vec![b.id, c.id], None)
        .await
        .expect("created");
    // Queued back to back, so that they most likely share a batch.
    let ok1 = store
        .queue_message(message(&a, SendTarget::Direct(b.id), "one", None))
        .await
        .expect("queued");
    let not_member = store
        .queue_message(message(&a, SendTarget::Chat(bc.chat.id), "no", None))
        .await
        .expect("queued");
    let unknown = store
        .queue_message(message(&a, SendTarget::Chat(Uuid::now_v7()), "no", None))
        .await
        .expect("queued");
    let ok2 = store
        .queue_message(message(&a, SendTarget::Direct(b.id), "two", None))
        .await
        .expect("queued");

    let ok1 = ok1.await.expect("stored");
    assert!(matches!(not_member.await, Err(StoreError::ChatNotFound)));
    assert!(matches!(unknown.await, Err(StoreError::ChatNotFound)));
    let ok2 = ok2.await.expect("stored");
    assert_eq!((ok1.message.seq, ok2.message.seq), (1, 2));
    let events = store.events_since(b.id, 0, 10).await.expect("reads");
    assert_eq!(events.len(), 2);
}

/// Checks of two nodes (two stores) on one database: what one process cannot
/// serialize must be serialized by the database.
macro_rules! two_nodes {
    ($($check:ident),* $(,)?) => {
        mod two_nodes_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $check() {
                    let db = crate::test_db::TestDb::sqlite();
                    let (a, b) = (super::open(&db).await, super::open(&db).await);
                    super::$check(a.clone(), b.clone()).await;
                    a.close().await;
                    b.close().await;
                }
            )*
        }
        mod two_nodes_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $check() {
                    let Some(db) = crate::test_db::TestDb::postgres().await else {
                        return;
                    };
                    let (a, b) = (super::open(&db).await, super::open(&db).await);
                    super::$check(a.clone(), b.clone()).await;
                    a.close().await;
                    b.close().await;
                }
            )*
        }
    };
}

two_nodes!(
    sends_through_two_nodes_number_a_recipients_events_without_gaps,
    two_nodes_racing_on_one_key_have_one_winner,
);

async fn sends_through_two_nodes_number_a_recipients_events_without_gaps(
    node_a: DynStore,
    node_b: DynStore,
) {
    const SENDERS: usize = 8;
    const EACH: usize = 25;
    let hub = user(&node_a, 0).await;
    let mut tasks = Vec::new();
    for i in 1..=SENDERS {
        let node = if i % 2 == 0 {
            node_a.clone()
        } else {
            node_b.clone()
        };
        let sender = user(&node, i).await;
        let hub = hub.clone();
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..EACH {
                let sent = node
                    .send_message(message(
                        &sender,
                        SendTarget::Direct(hub.id),
                        &format!("{i}"),
                        None,
                    ))
                    .await
                    .expect("stored");
                seqs.push(sent.message.seq);
            }
            seqs
        }));
    }
    for task in futures_util::future::join_all(tasks).await {
        let seqs = task.expect("the sender runs");
        assert_eq!(seqs, (1..=EACH as i64).collect::<Vec<_>>());
    }
    let total = (SENDERS * EACH) as i64;
    for node in [&node_a, &node_b] {
        let numbers: Vec<i64> = node
            .events_since(hub.id, 0, 1_000)
            .await
            .expect("the log reads")
            .iter()
            .map(|(n, _)| *n)
            .collect();
        assert_eq!(
            numbers,
            (1..=total).collect::<Vec<_>>(),
            "gap-free, in order"
        );
    }
}

async fn two_nodes_racing_on_one_key_have_one_winner(node_a: DynStore, node_b: DynStore) {
    let nodes = [node_a.clone(), node_b.clone()];
    // One phone number.
    let registrations = (0..8).map(|i| {
        let node = nodes[i % 2].clone();
        tokio::spawn(async move {
            node.create_user(NewUser {
                phone_number: phone(7),
                display_name: None,
                token_hash: format!("racer-{i}"),
                user_agent: None,
            })
            .await
        })
    });
    let results: Vec<_> = futures_util::future::join_all(registrations)
        .await
        .into_iter()
        .map(|r| r.expect("the task runs"))
        .collect();
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(
        results
            .iter()
            .all(|r| r.is_ok() || matches!(r, Err(StoreError::PhoneTaken)))
    );

    // One pair's 1:1 chat, created on first send from both nodes at once.
    let (a, b) = (user(&node_a, 1).await, user(&node_b, 2).await);
    let sends = (0..8).map(|i| {
        let node = nodes[i % 2].clone();
        let (from, to) = if i % 4 < 2 {
            (a.clone(), b.clone())
        } else {
            (b.clone(), a.clone())
        };
        tokio::spawn(async move {
            node.send_message(message(&from, SendTarget::Direct(to.id), "first", None))
                .await
        })
    });
    let chats: HashSet<Uuid> = futures_util::future::join_all(sends)
        .await
        .into_iter()
        .map(|r| r.expect("the task runs").expect("stored").message.chat_id)
        .collect();
    assert_eq!(chats.len(), 1, "one chat for the pair");

    // One (sender, clientMessageId).
    let repeats = (0..8).map(|i| {
        let node = nodes[i % 2].clone();
        let new = message(&a, SendTarget::Direct(b.id), "once", Some("same-key"));
        tokio::spawn(async move { node.send_message(new).await })
    });
    let sent: Vec<Sent> = futures_util::future::join_all(repeats)
        .await
        .into_iter()
        .map(|r| r.expect("the task runs").expect("stored"))
        .collect();
    let ids: HashSet<Uuid> = sent.iter().map(|s| s.message.id).collect();
    assert_eq!(ids.len(), 1, "one stored message");
    assert_eq!(sent.iter().filter(|s| !s.duplicate).count(), 1);
}

#[tokio::test]
async fn postgres_refuses_a_schema_newer_than_it_knows_and_migrates_once() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let first = open(&db).await;
    first.close().await;
    // Opening again applies nothing and works.
    let again = open(&db).await;
    again.close().await;

    let (client, connection) = tokio_postgres::connect(db.url(), tokio_postgres::NoTls)
        .await
        .expect("connects");
    let driver = tokio::spawn(connection);
    let row = client
        .query_one(
            "SELECT COUNT(*), MAX(version)::int8 FROM schema_migrations",
            &[],
        )
        .await
        .expect("reads");
    let (versions, newest): (i64, i64) = (row.get(0), row.get(1));
    let known = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
        .expect("the migrations directory")
        .count() as i64;
    assert_eq!(newest, known, "every migration applied: {newest}");
    assert_eq!(versions, newest, "each migration recorded once");
    client
        .execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (999, 0)",
            &[],
        )
        .await
        .expect("a future version");
    drop(client);
    let _ = driver.await;

    let refused = missive_server::store::open(db.url(), pool(2)).await;
    let message = refused
        .err()
        .expect("a newer schema is refused")
        .to_string();
    assert!(message.contains("999"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_group_commits_queued_sends_in_few_transactions() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let store = open(&db).await;
    let (a, b) = (user(&store, 1).await, user(&store, 2).await);
    // Make the chat first, so that every send below is a plain one.
    send(&store, &a, &b, "hello").await;
    let mut pending = Vec::new();
    for i in 0..200 {
        pending.push(
            store
                .queue_message(message(&a, SendTarget::Direct(b.id), &format!("{i}"), None))
                .await
                .expect("queued"),
        );
    }
    for committing in pending {
        committing.await.expect("stored");
    }
    store.close().await;

    // Rows written by one transaction share its id (`xmin`).
    let (client, connection) = tokio_postgres::connect(db.url(), tokio_postgres::NoTls)
        .await
        .expect("connects");
    let driver = tokio::spawn(connection);
    let transactions: i64 = client
        .query_one(
            "SELECT COUNT(DISTINCT xmin::text) FROM messages WHERE content <> 'hello'",
            &[],
        )
        .await
        .expect("reads")
        .get(0);
    drop(client);
    let _ = driver.await;
    assert!(
        transactions <= 50,
        "200 queued sends took {transactions} transactions"
    );
}

async fn sessions_are_listed_by_last_use_touched_forward_and_revoked_by_their_owner_only(
    store: DynStore,
) {
    let alice = user(&store, 1).await;
    let bob = user(&store, 2).await;
    store
        .add_token(alice.id, "alice-phone".into(), Some("phone".into()))
        .await
        .expect("added");
    let first = store
        .session_by_token("token-of-1")
        .await
        .expect("reads")
        .expect("live");
    let phone_session = store
        .session_by_token("alice-phone")
        .await
        .expect("reads")
        .expect("live");
    assert_ne!(first.id, phone_session.id);
    assert_eq!(first.last_used_at, first.created_at, "used when issued");

    // The registration token is used later than the phone's: it comes first.
    let later = phone_session.last_used_at + 60_000;
    store
        .touch_token("token-of-1", later)
        .await
        .expect("touched");
    store
        .touch_token("token-of-1", later - 30_000)
        .await
        .expect("an older use is ignored");
    let listed = store.list_sessions(alice.id, 0).await.expect("listed");
    let ids: Vec<Uuid> = listed.iter().map(|s| s.id).collect();
    assert_eq!(ids, [first.id, phone_session.id]);
    assert_eq!(listed[0].last_used_at, later);
    assert_eq!(listed[0].user_agent, None);
    assert_eq!(listed[1].user_agent.as_deref(), Some("phone"));
    // Only sessions used since the cut-off are live.
    let recent = store.list_sessions(alice.id, later).await.expect("listed");
    assert_eq!(recent.len(), 1);
    assert_eq!(
        store
            .revoke_session(alice.id, phone_session.id, later)
            .await
            .expect("judged"),
        None,
        "an expired session is not revoked (nor found)"
    );

    // Bob cannot revoke Alice's session; Alice can.
    assert_eq!(
        store
            .revoke_session(bob.id, phone_session.id, 0)
            .await
            .expect("judged"),
        None
    );
    assert_eq!(
        store
            .revoke_session(alice.id, phone_session.id, 0)
            .await
            .expect("judged")
            .as_deref(),
        Some("alice-phone")
    );
    assert_eq!(token_user(&store, "alice-phone").await, None);
    assert_eq!(
        store
            .revoke_session(alice.id, phone_session.id, 0)
            .await
            .expect("judged"),
        None,
        "once"
    );
    let left = store.list_sessions(alice.id, 0).await.expect("listed");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id, first.id);
    assert_eq!(
        store.list_sessions(bob.id, 0).await.expect("listed").len(),
        1
    );
}

async fn pruning_removes_expired_and_revoked_tokens_and_expired_codes_once(store: DynStore) {
    use std::sync::Arc;
    use std::time::Duration;

    use missive_server::maintenance::Maintenance;
    use missive_server::security::ManualClock;

    let alice = user(&store, 1).await;
    let bob = user(&store, 2).await;
    store
        .add_token(alice.id, "revoked".into(), None)
        .await
        .expect("added");
    store.revoke_token("revoked").await.expect("revoked");
    store
        .add_token(alice.id, "in-use".into(), None)
        .await
        .expect("added");
    let clock = Arc::new(ManualClock::new());
    let ttl = Duration::from_secs(3600);
    clock.advance(ttl + Duration::from_secs(60));
    // Used recently (by the clock of the maintenance); the others were not.
    store
        .touch_token("in-use", missive_server::security::Clock::now_ms(&*clock))
        .await
        .expect("touched");
    let now = missive_server::security::Clock::now_ms(&*clock);
    for (who, expires_at) in [(&alice, now - 1), (&bob, now + 60_000)] {
        store
            .put_login_code(LoginCode {
                user: who.id,
                phone_number: who.phone_number.clone(),
                code_hash: "code".into(),
                expires_at,
            })
            .await
            .expect("put");
    }
    let maintenance = Maintenance::new(
        store.clone(),
        clock,
        ttl,
        missive_server::config::Retention(None),
    );

    // Alice's registration token (expired), Bob's (expired) and the revoked one.
    assert_eq!(maintenance.prune_tokens().await.expect("pruned"), 3);
    assert_eq!(maintenance.prune_login_codes().await.expect("pruned"), 1);
    assert_eq!(
        maintenance.prune_tokens().await.expect("pruned"),
        0,
        "idempotent"
    );
    assert_eq!(maintenance.prune_login_codes().await.expect("pruned"), 0);

    assert_eq!(token_user(&store, "token-of-1").await, None);
    assert_eq!(token_user(&store, "in-use").await, Some(alice.clone()));
    let live = store.list_sessions(alice.id, 0).await.expect("listed");
    assert_eq!(live.len(), 1, "only the token in use is left: {live:?}");
    // Bob's code is still there: it can be redeemed.
    let redeemed = store
        .redeem_login_code(CodeAttempt {
            phone_number: bob.phone_number.clone(),
            code_hash: "code".into(),
            now,
            token_hash: "bob-new".into(),
            user_agent: None,
            max_attempts: 5,
        })
        .await
        .expect("judged");
    assert_eq!(redeemed, Redeemed::Valid(bob));
    maintenance.run_once().await;
}

/// Checks a token issued before sessions existed (`id`, `created_at`) after
/// the sessions migration: it still works, with a fresh TOKEN_TTL, and is
/// listed with a random (version 4) session id.
async fn an_old_token_is_a_live_session(store: &DynStore, user: Uuid, created_at: i64) {
    let now = missive_server::domain::now_ms();
    let session = store
        .session_by_token("old-token")
        .await
        .expect("reads")
        .expect("the old token still works");
    assert_eq!(session.user.id, user);
    assert_eq!(session.created_at, created_at);
    assert!(
        (now - 60_000..=now).contains(&session.last_used_at),
        "last used at the migration: {} vs now {now}",
        session.last_used_at
    );
    assert_eq!(session.id.get_version_num(), 4, "{}", session.id);
    let listed = store
        .list_sessions(user, now - 60_000)
        .await
        .expect("listed");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, session.id);
    assert_eq!(listed[0].user_agent, None);
}

#[tokio::test]
async fn sqlite_tokens_issued_before_sessions_keep_working_and_are_listed() {
    let db = TestDb::sqlite();
    let path = db.url().strip_prefix("sqlite://").expect("a file URL");
    let user = Uuid::now_v7();
    {
        let conn = rusqlite::Connection::open(path).expect("opens");
        for script in [
            include_str!("../../migrations/sqlite/0001_init.sql"),
            include_str!("../../migrations/sqlite/0002_login_codes.sql"),
            include_str!("../../migrations/sqlite/0003_health.sql"),
        ] {
            conn.execute_batch(script).expect("an old migration");
        }
        conn.execute_batch(&format!(
            "PRAGMA user_version = 3;
             INSERT INTO users (id, phone_number, created_at) VALUES ('{user}', '+15550000001', 1000);
             INSERT INTO tokens (token_hash, user_id, created_at) VALUES ('old-token', '{user}', 1000);"
        ))
        .expect("an old token");
    }
    let store = open(&db).await;
    an_old_token_is_a_live_session(&store, user, 1000).await;
    store.close().await;
}

#[tokio::test]
async fn postgres_tokens_issued_before_sessions_keep_working_and_are_listed() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let user = Uuid::now_v7();
    {
        let (client, connection) = tokio_postgres::connect(db.url(), tokio_postgres::NoTls)
            .await
            .expect("connects");
        let driver = tokio::spawn(connection);
        client
            .batch_execute(include_str!("../../migrations/postgres/0001_init.sql"))
            .await
            .expect("the first migration");
        client
            .batch_execute(
                "CREATE TABLE schema_migrations (version integer PRIMARY KEY, applied_at bigint NOT NULL);
                 INSERT INTO schema_migrations (version, applied_at) VALUES (1, 0);",
            )
            .await
            .expect("recorded");
        client
            .execute(
                "INSERT INTO users (id, phone_number, created_at) VALUES ($1, '+15550000001', 1000)",
                &[&user],
            )
            .await
            .expect("a user");
        client
            .execute(
                "INSERT INTO tokens (token_hash, user_id, created_at) VALUES ('old-token', $1, 1000)",
                &[&user],
            )
            .await
            .expect("an old token");
        drop(client);
        let _ = driver.await;
    }
    let store = open(&db).await;
    an_old_token_is_a_live_session(&store, user, 1000).await;
    store.close().await;
}

/// Checks that the event log's row of `user` numbered 1, of kind `reaction`
/// (a kind this build does not know), fails the read with an error naming
/// the kind: it is never served as a receipt (or any other kind).
async fn an_unknown_event_kind_fails_the_read(store: &DynStore, user: Uuid) {
    let read = store.events_since(user, 0, 10).await;
    match read {
        Err(StoreError::Internal(detail)) => {
            assert!(detail.contains("\"reaction\""), "names the kind: {detail}")
        }
        other => panic!("an unknown kind must fail the read, got {other:?}"),
    }
}

#[tokio::test]
async fn sqlite_an_event_of_an_unknown_kind_fails_the_read_naming_it() {
    let db = TestDb::sqlite();
    let path = db.url().strip_prefix("sqlite://").expect("a file URL");
    let store = open(&db).await;
    let alice = user(&store, 1).await;
    {
        let conn = rusqlite::Connection::open(path).expect("opens");
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .expect("a busy timeout");
        conn.execute(
            "INSERT INTO events (user_id, seq, kind, chat_id, message_id, status, actor, created_at)
             VALUES (?1, 1, 'reaction', zeroblob(16), zeroblob(16), 'read', '+15550000002', 0)",
            [&alice.id.as_bytes()[..]],
        )
        .expect("a row of an unknown kind");
    }
    an_unknown_event_kind_fails_the_read(&store, alice.id).await;
    store.close().await;
}

#[tokio::test]
async fn postgres_an_event_of_an_unknown_kind_fails_the_read_naming_it() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let store = open(&db).await;
    let alice = user(&store, 1).await;
    {
        let (client, connection) = tokio_postgres::connect(db.url(), tokio_postgres::NoTls)
            .await
            .expect("connects");
        let driver = tokio::spawn(connection);
        client
            .execute(
                "INSERT INTO events (user_id, seq, kind, chat_id, message_id, status, actor, created_at)
                 VALUES ($1, 1, 'reaction', $2, $2, 'read', '+15550000002', 0)",
                &[&alice.id, &Uuid::nil()],
            )
            .await
            .expect("a row of an unknown kind");
        drop(client);
        let _ = driver.await;
    }
    an_unknown_event_kind_fails_the_read(&store, alice.id).await;
    store.close().await;
}
