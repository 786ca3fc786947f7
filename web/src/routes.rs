//! The URLs of the web UI, built in one place so pages and the instance's routes agree.
//!
//! Path segments come from validated slugs, handles and ids, but they are percent-encoded anyway,
//! so a stray `/`, `?` or `#` in stored data can never turn a link into a different route.

/// Percent-encodes everything in a path segment except RFC 3986 unreserved characters.
pub fn segment(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for byte in raw.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
    }
    out
}

/// Percent-encodes a query-string value (same rule as [`segment`]).
pub fn query_value(raw: &str) -> String {
    segment(raw)
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

pub const HOME: &str = "/";
pub const SIGNUP: &str = "/signup";
pub const SIGNIN: &str = "/signin";
pub const VERIFY: &str = "/verify";
pub const SIGNOUT: &str = "/signout";
pub const ACCOUNT: &str = "/me";
pub const TOKENS: &str = "/me/tokens";
pub const SPACE_NEW: &str = "/spaces/new";
pub const SPACES: &str = "/spaces";
/// The job queue, for operators.
pub const ADMIN_QUEUE: &str = "/admin/queue";
pub const ADMIN_GATHERINGS: &str = "/admin/gatherings";
/// Visiting a Room on another instance with this instance's Passport.
pub const VISIT: &str = "/visit";
/// Asking to join a members-only Room on another instance.
pub const VISIT_JOIN: &str = "/visit/join";

/// Where a person answers an invitation to a Space on another instance.
pub fn visit_invitation(accept: bool) -> String {
    format!(
        "{VISIT}/invitations/{}",
        if accept { "accept" } else { "decline" }
    )
}

/// Where owners invite a Passport of another instance by its address.
pub fn remote_invitation(space: &str) -> String {
    format!("{}/invitations/remote", self::space(space))
}

/// Where an owner lets a request to join from another instance in, or turns it down.
pub fn join_request_decision(space: &str, id: i64, approve: bool) -> String {
    let verb = if approve { "approve" } else { "decline" };
    format!("{}/join-requests/{id}/{verb}", self::space(space))
}

/// Where a signed-out visitor of a Room names their Passport on another instance.
pub fn room_elsewhere(space: &str, room: &str) -> String {
    format!("{}/elsewhere", self::room(space, room))
}
/// Spaces followed on other instances, and the partners' directory.
pub const NETWORK: &str = "/network";
/// Where the Network page's follow form posts.
pub const NETWORK_FOLLOW: &str = "/network/follow";
/// The partner policy, for operators.
pub const ADMIN_FEDERATION: &str = "/admin/federation";

/// `/network/unfollow?space={actor}`
pub fn network_unfollow(space_actor: &str) -> String {
    format!("/network/unfollow?space={}", query_value(space_actor))
}

/// `/admin/federation/{action}?domain={domain}` (`check`, `remove`)
pub fn admin_federation_action(action: &str, domain: &str) -> String {
    format!(
        "{ADMIN_FEDERATION}/{}?domain={}",
        segment(action),
        query_value(domain)
    )
}

/// `/admin/federation/passports/unblock?address={address}`
pub fn admin_unblock_passport(address: &str) -> String {
    format!(
        "{ADMIN_FEDERATION}/passports/unblock?address={}",
        query_value(address)
    )
}

/// `/admin/queue/jobs/{id}/retry`
pub fn admin_queue_retry(id: i64) -> String {
    format!("{ADMIN_QUEUE}/jobs/{id}/retry")
}

/// `/verify?email=E`
pub fn verify(email: &str) -> String {
    format!("{VERIFY}?email={}", query_value(email))
}

/// `/signin?email=E`: the sign-in form with the email filled in.
pub fn signin_with_email(email: &str) -> String {
    format!("{SIGNIN}?email={}", query_value(email))
}

/// `/me/tokens/{id}/revoke`
pub fn token_revoke(id: &str) -> String {
    format!("{TOKENS}/{}/revoke", segment(id))
}

/// `/spaces/{space}`
pub fn space(space: &str) -> String {
    format!("/spaces/{}", segment(space))
}

/// `/spaces/{space}/edit`
pub fn space_edit(space: &str) -> String {
    format!("{}/edit", self::space(space))
}

/// `/spaces/{space}/members`
pub fn members(space: &str) -> String {
    format!("{}/members", self::space(space))
}

/// `/spaces/{space}/invitations`
pub fn invitations(space: &str) -> String {
    format!("{}/invitations", self::space(space))
}

/// `/spaces/{space}/invitations/{id}/revoke`
pub fn invitation_revoke(space: &str, id: &str) -> String {
    format!("{}/{}/revoke", invitations(space), segment(id))
}

/// `/spaces/{space}/members/{handle}/remove`
pub fn member_remove(space: &str, handle: &str) -> String {
    format!("{}/{}/remove", members(space), segment(handle))
}

/// `/spaces/{space}/follow-requests/{action}?actor={actor}` (`approve`, `reject`)
pub fn follow_request(space: &str, action: &str, actor: &str) -> String {
    format!(
        "{}/follow-requests/{}?actor={}",
        self::space(space),
        segment(action),
        query_value(actor)
    )
}

/// `/spaces/{space}/leave`
pub fn leave(space: &str) -> String {
    format!("{}/leave", self::space(space))
}

/// `/invitations/{token}`
pub fn invitation(token: &str) -> String {
    format!("/invitations/{}", segment(token))
}

/// `/invitations/{token}/accept`
pub fn invitation_accept(token: &str) -> String {
    format!("{}/accept", invitation(token))
}

/// `/invitations/{token}/decline`
pub fn invitation_decline(token: &str) -> String {
    format!("{}/decline", invitation(token))
}

/// `/spaces/{space}/rooms`: where the new-room form posts.
pub fn rooms(space: &str) -> String {
    format!("{}/rooms", self::space(space))
}

/// `/spaces/{space}/rooms/new`
pub fn room_new(space: &str) -> String {
    format!("{}/new", rooms(space))
}

/// `/spaces/{space}/rooms/{room}`
pub fn room(space: &str, room: &str) -> String {
    format!("{}/{}", rooms(space), segment(room))
}

/// `/spaces/{space}/rooms/{room}/unlock`
pub fn room_unlock(space: &str, room: &str) -> String {
    format!("{}/unlock", self::room(space, room))
}

/// `/spaces/{space}/rooms/{room}/edit`
pub fn room_edit(space: &str, room: &str) -> String {
    format!("{}/edit", self::room(space, room))
}

/// `/spaces/{space}/rooms/{room}/token`: where the room client asks for a media token.
pub fn room_token(space: &str, room: &str) -> String {
    format!("{}/token", self::room(space, room))
}

/// `/spaces/{space}/rooms/{room}/signal`: the room client's signaling WebSocket.
pub fn room_signal(space: &str, room: &str) -> String {
    format!("{}/signal", self::room(space, room))
}

/// `/spaces/{space}/rooms/{room}/delete`
pub fn room_delete(space: &str, room: &str) -> String {
    format!("{}/delete", self::room(space, room))
}

/// `/signin?next=N`: the sign-in form, returning to `next` (a local path) afterwards.
pub fn signin_then(next: &str) -> String {
    format!("{SIGNIN}?next={}", query_value(next))
}

/// `/signin?next=N&email=E`: sign in with the email filled in, then return to `next`.
pub fn signin_then_with_email(next: &str, email: &str) -> String {
    format!("{}&email={}", signin_then(next), query_value(email))
}

/// `/signup?next=N&email=E`: sign up with the email filled in, then return to `next`.
pub fn signup_then_with_email(next: &str, email: &str) -> String {
    format!(
        "{SIGNUP}?next={}&email={}",
        query_value(next),
        query_value(email)
    )
}

/// `/signup?email=E`: the sign-up form with the email filled in.
pub fn signup_with_email(email: &str) -> String {
    format!("{SIGNUP}?email={}", query_value(email))
}

/// `/verify?email=E&code=C`: the link in a verification email, which fills in both.
pub fn verify_with_code(email: &str, code: &str) -> String {
    format!("{}&code={}", verify(email), query_value(code))
}

/// `/governance`: the Circle, the Budget, the Objectives, elections and motions.
pub const GOVERNANCE: &str = "/governance";
/// `/governance/workers`: where the Worker-role form posts.
pub const GOVERNANCE_WORKERS: &str = "/governance/workers";
/// `/governance/circle/size`: where the Circle-size form posts.
pub const CIRCLE_SIZE: &str = "/governance/circle/size";
/// `/governance/circle/countback`: where a countback is asked for.
pub const CIRCLE_COUNTBACK: &str = "/governance/circle/countback";
/// `/governance/elections/new`: the new-election form.
pub const ELECTION_NEW: &str = "/governance/elections/new";
/// `/governance/elections`: where the new-election form posts.
pub const ELECTIONS: &str = "/governance/elections";
/// `/governance/motions`: where the motion forms post.
pub const MOTIONS: &str = "/governance/motions";

/// `/governance/circle/seats/{handle}/vacate`
pub fn seat_vacate(handle: &str) -> String {
    format!("{GOVERNANCE}/circle/seats/{}/vacate", segment(handle))
}

/// `/governance/elections/{id}`
pub fn election(id: i64) -> String {
    format!("{ELECTIONS}/{id}")
}

/// `/governance/elections/{id}/nominations`: where the nomination form posts.
pub fn nominations(election: i64) -> String {
    format!("{}/nominations", self::election(election))
}

/// `/governance/elections/{id}/nominations/{nid}/accept`
pub fn nomination_accept(election: i64, nomination: i64) -> String {
    format!("{}/{nomination}/accept", nominations(election))
}

/// `/governance/elections/{id}/nominations/{nid}/withdraw`
pub fn nomination_withdraw(election: i64, nomination: i64) -> String {
    format!("{}/{nomination}/withdraw", nominations(election))
}

/// `/governance/elections/{id}/ballot/{secret}`: a voter's secret ballot link.
pub fn ballot(election: i64, secret: &str) -> String {
    format!("{}/ballot/{}", self::election(election), segment(secret))
}

/// `/governance/elections/{id}/receipts`
pub fn receipts(election: i64) -> String {
    format!("{}/receipts", self::election(election))
}

/// `/governance/elections/{id}/result`
pub fn result(election: i64) -> String {
    format!("{}/result", self::election(election))
}

/// `/governance/elections/{id}/result.json`
pub fn result_json(election: i64) -> String {
    format!("{}/result.json", self::election(election))
}

/// `/governance/elections/{id}/ballots.blt`
pub fn ballots_blt(election: i64) -> String {
    format!("{}/ballots.blt", self::election(election))
}

/// `/governance/elections/{id}/remind`
pub fn remind(election: i64) -> String {
    format!("{}/remind", self::election(election))
}

/// `/governance/elections/{id}/close`
pub fn close(election: i64) -> String {
    format!("{}/close", self::election(election))
}

/// `/governance/motions/{id}`
pub fn motion(id: i64) -> String {
    format!("{MOTIONS}/{id}")
}

/// `/governance/motions/{id}/vote`
pub fn motion_vote(id: i64) -> String {
    format!("{}/vote", motion(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_the_spec_urls() {
        assert_eq!(space("book-club"), "/spaces/book-club");
        assert_eq!(room("book-club", "lobby"), "/spaces/book-club/rooms/lobby");
        assert_eq!(room_unlock("a", "b"), "/spaces/a/rooms/b/unlock");
        assert_eq!(member_remove("a", "ada"), "/spaces/a/members/ada/remove");
        assert_eq!(
            invitation_revoke("a", "7"),
            "/spaces/a/invitations/7/revoke"
        );
        assert_eq!(token_revoke("3"), "/me/tokens/3/revoke");
        assert_eq!(room_new("a"), "/spaces/a/rooms/new");
        assert_eq!(room_token("a", "b"), "/spaces/a/rooms/b/token");
        assert_eq!(room_signal("a", "b"), "/spaces/a/rooms/b/signal");
    }

    #[test]
    fn builds_the_governance_urls_the_instance_routes() {
        assert_eq!(seat_vacate("ada"), "/governance/circle/seats/ada/vacate");
        assert_eq!(election(7), "/governance/elections/7");
        assert_eq!(nominations(7), "/governance/elections/7/nominations");
        assert_eq!(
            nomination_accept(7, 3),
            "/governance/elections/7/nominations/3/accept"
        );
        assert_eq!(
            nomination_withdraw(7, 3),
            "/governance/elections/7/nominations/3/withdraw"
        );
        assert_eq!(
            ballot(7, "s3cr/t"),
            "/governance/elections/7/ballot/s3cr%2Ft"
        );
        assert_eq!(receipts(7), "/governance/elections/7/receipts");
        assert_eq!(result(7), "/governance/elections/7/result");
        assert_eq!(result_json(7), "/governance/elections/7/result.json");
        assert_eq!(ballots_blt(7), "/governance/elections/7/ballots.blt");
        assert_eq!(remind(7), "/governance/elections/7/remind");
        assert_eq!(close(7), "/governance/elections/7/close");
        assert_eq!(motion(2), "/governance/motions/2");
        assert_eq!(motion_vote(2), "/governance/motions/2/vote");
    }

    #[test]
    fn builds_the_auth_links_with_encoded_queries() {
        assert_eq!(signin_then("/spaces/a"), "/signin?next=%2Fspaces%2Fa");
        assert_eq!(
            signup_with_email("a+b@x.org"),
            "/signup?email=a%2Bb%40x.org"
        );
        assert_eq!(
            signin_then_with_email("/invitations/t", "a@x.org"),
            "/signin?next=%2Finvitations%2Ft&email=a%40x.org"
        );
        assert_eq!(
            signup_then_with_email("/invitations/t", "a@x.org"),
            "/signup?next=%2Finvitations%2Ft&email=a%40x.org"
        );
        assert_eq!(
            verify_with_code("a@x.org", "12 34"),
            "/verify?email=a%40x.org&code=12%2034"
        );
    }

    #[test]
    fn encodes_anything_that_could_change_the_path() {
        assert_eq!(segment("../x y/?#"), "..%2Fx%20y%2F%3F%23");
        assert_eq!(segment("é"), "%C3%A9");
        assert_eq!(
            verify("a+b@example.org"),
            "/verify?email=a%2Bb%40example.org"
        );
    }
}
