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

/// `/spaces/{space}/rooms/{room}/delete`
pub fn room_delete(space: &str, room: &str) -> String {
    format!("{}/delete", self::room(space, room))
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
