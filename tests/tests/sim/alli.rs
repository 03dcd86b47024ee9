//! The Alli simulator's GraphQL schema against the plugin: every document the `alli` plugin
//! sends validates against the SDL of alli.md §3, and the simulator refuses what does not.

use pipe_sim::alli::{SCHEMA_SDL, schema, validate_document};

#[test]
fn every_plugin_document_validates_against_the_sdl() {
    assert!(!schema().types.is_empty());
    for (name, doc) in pipe_plugin_alli::graphql::DOCUMENTS {
        match validate_document(doc) {
            Ok(valid) => assert!(valid.operations.get(Some(name)).is_ok(), "{name}: no operation of that name"),
            Err(errors) => panic!("{name} does not validate against the Alli SDL: {errors:?}\n{doc}"),
        }
    }
}

#[test]
fn the_sdl_documents_the_alli_surface() {
    for needle in [
        "login(email: String!, password: String!)",
        "union Chat = UserChat | AgentChat | BotChat",
        "node(id: ID!): Node",
        "startAt_Gte",
    ] {
        assert!(SCHEMA_SDL.contains(needle), "{needle}");
    }
    // The official onboarding example (alli.md §3.2) validates as written.
    let example = "query getConversations($filter: ConversationFilterInput, $limit: Int) {
      conversations(filter: $filter, first: $limit) { edges { node { id campaign { id name description } user { id firstName ownUserId }
        chats { edges { node { ... on UserChat { message } ... on AgentChat { message agent { name } } ... on BotChat { message createdAt chatOptions } __typename } } } } } } }";
    validate_document(example).expect("the onboarding example is valid");
    let users = "query getUsers($filter: UserFilter, $limit: Int) { users(filter: $filter, first: $limit) { edges { node { ownUserId name online variables { edges { node { id name } value readOnly } } } } } }";
    validate_document(users).expect("the users example is valid");
    assert!(
        validate_document("{ conversations(first: 5) { edges { node { id chats { edges { node { message } } } } } } }")
            .is_err(),
        "union fields need fragments"
    );
}
