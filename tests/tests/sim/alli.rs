//! The Alli simulator's GraphQL schema against the plugin: every document the `alli` plugin
//! sends validates against the SDL of alli.md §3, and the simulator refuses what does not.

use pipe_sim::alli::{SCHEMA_SDL, schema, validate_document};

#[test]
fn every_plugin_document_validates_against_the_sdl() {
    assert!(!schema().types.is_empty());
    for (name, doc) in pipe_plugin_alli::graphql::documents() {
        match validate_document(&doc) {
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

mod introspected {
    use pipe_plugin_alli::client::schema::{self, ASSUMED_TYPES, Names, Paging, Plan, Schema};
    use pipe_sim::alli::{SchemaMode, SimConfig, execute, generate, validate_document_in};
    use serde_json::json;

    /// What the `alli` source learns from a server of `mode`: the introspection rounds it
    /// sends, answered by the simulator's executor.
    fn learn(mode: SchemaMode) -> (Schema, usize) {
        let data = generate(&SimConfig::small(3));
        let mut schema = Schema::default();
        let mut names: Vec<String> = ASSUMED_TYPES.iter().map(|s| s.to_string()).collect();
        let mut rounds = 0;
        while !names.is_empty() && rounds < 6 {
            let body = json!({"query": schema::introspection_query(&names), "operationName": "AlliIntrospection"});
            let answer = execute(&data, mode, &body);
            assert!(answer.get("errors").is_none(), "{answer}");
            schema.absorb(&names, &answer["data"]);
            names = Names::resolve(&schema).missing(&schema);
            rounds += 1;
        }
        (schema, rounds)
    }

    #[test]
    fn the_assumed_schema_needs_one_request_and_gives_the_assumed_plan() {
        let (schema, rounds) = learn(SchemaMode::Assumed);
        assert_eq!(rounds, 1, "every assumed type name is right: one request");
        let plan = Plan::new(&schema);
        assert_eq!(plan, Plan::assumed());
        assert!(plan.absent.is_empty() && plan.missing_required.is_empty(), "{plan:?}");
    }

    #[test]
    fn built_documents_validate_against_the_server_they_were_built_for() {
        for mode in [SchemaMode::Assumed, SchemaMode::Sparse, SchemaMode::Unpaged] {
            let plan = Plan::new(&learn(mode).0);
            assert!(plan.missing_required.is_empty(), "{mode:?}: {:?}", plan.missing_required);
            let list = plan.conversations_query();
            validate_document_in(mode, &list).unwrap_or_else(|e| panic!("{mode:?}: {e:?}\n{list}"));
            if let Some(chats) = plan.chats_query() {
                validate_document_in(mode, &chats).unwrap_or_else(|e| panic!("{mode:?}: {e:?}\n{chats}"));
            }
            // The documents of the assumed schema are refused by the stricter servers: what the
            // source would have sent without introspecting.
            let assumed = Plan::assumed().conversations_query();
            assert_eq!(validate_document_in(mode, &assumed).is_ok(), mode == SchemaMode::Assumed, "{mode:?}");
        }
    }

    #[test]
    fn a_sparse_server_is_paged_by_id_and_an_unpaged_one_not_at_all() {
        let sparse = Plan::new(&learn(SchemaMode::Sparse).0);
        assert_eq!((sparse.list_paging, sparse.chat_paging), (Paging::Cursor, Paging::LastId));
        assert_eq!(sparse.conversation_fields, vec!["id", "state", "createdAt"]);
        assert_eq!(sparse.user_fields, vec!["id", "ownUserId", "firstName"]);
        assert_eq!(sparse.chat_args["after"].sdl, "ID", "the seed: after takes an ID");
        for f in ["Conversation.modifiedAt", "Conversation.lastChatTime", "User.name"] {
            assert!(sparse.absent.iter().any(|a| a == f), "{f}: {:?}", sparse.absent);
        }
        let columns = sparse.absent_columns().join("; ");
        assert!(columns.contains("conversations.updated_at"), "{columns}");
        assert!(!sparse.conversations_query().contains("pageInfo {\n            hasNextPage"), "no pageInfo on chats");

        let unpaged = Plan::new(&learn(SchemaMode::Unpaged).0);
        assert_eq!(unpaged.chat_paging, Paging::None);
        assert!(unpaged.chats_query().is_none());
        assert!(unpaged.node_id.is_none());
    }

    /// The onboarding guide's own queries (the seed, docs/vendors/alli.md §3) are valid on every
    /// simulated server: the strict modes take nothing away that the guide shows.
    #[test]
    fn the_seed_examples_validate_on_every_mode() {
        let example = "query getConversations($filter: ConversationFilterInput, $limit: Int) {
          conversations(filter: $filter, first: $limit) { edges { node { id user { ownUserId }
            chats { edges { node { ... on UserChat { message } ... on AgentChat { message agent { name } } ... on BotChat { message createdAt chatOptions } __typename } } } } } } }";
        let search = "query getConversations { conversations(filter: {searchTerm: \"Pocoyo\", campaignIds: [\"Q2FtcGFpZ246NWI5MzBjNGRmOWNhY2MwMjI4MGQ5OWY3\"]}, first: 3) {
          edges { node { id campaign { id } user { id firstName ownUserId } chats { edges { node { ... on UserChat { message } ... on AgentChat { message agent { name } } ... on BotChat { message createdAt chatOptions } __typename } } } } } } }";
        for mode in [SchemaMode::Assumed, SchemaMode::Sparse, SchemaMode::Unpaged] {
            for q in [example, search] {
                validate_document_in(mode, q).unwrap_or_else(|e| panic!("{mode:?}: {e:?}"));
            }
        }
    }
}
