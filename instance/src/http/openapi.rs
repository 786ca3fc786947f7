//! The OpenAPI 3.1 description of `/api/v1`, served at `/api/v1/openapi.json`.
//!
//! Written by hand next to the handlers in [`super::api`]; the end-to-end tests check that every
//! path listed here answers, so the two do not drift apart.

use serde_json::{Value, json};

fn op(summary: &str, auth: bool, body: Option<&str>, ok: (&str, &str)) -> Value {
    let mut v = json!({
        "summary": summary,
        "responses": {
            ok.0: {"description": ok.1},
            "default": {"description": "Error", "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}
        }
    });
    if auth {
        v["security"] = json!([{"bearer": []}]);
    }
    if let Some(schema) = body {
        v["requestBody"] = json!({
            "required": true,
            "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}
        });
    }
    v
}

fn param(name: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}})
}

pub fn document(server: &str) -> Value {
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Convene API",
            "version": "1",
            "description": "Spaces, Rooms and members of a Convene instance. Authenticate with a personal access token from the account page: `Authorization: Bearer cvn_…`.",
            "license": {"name": "AGPL-3.0-or-later", "identifier": "AGPL-3.0-or-later"}
        },
        "servers": [{"url": server}],
        "paths": {
            "/me": {"get": op("The caller's Passport and Spaces", true, None, ("200", "The Passport"))},
            "/spaces": {
                "get": op("Listed Spaces and the caller's own", false, None, ("200", "Spaces")),
                "post": op("Create a Space", true, Some("SpaceInput"), ("201", "The new Space"))
            },
            "/spaces/{space}": {
                "parameters": [param("space")],
                "get": op("A Space with the Rooms the caller may see", false, None, ("200", "The Space")),
                "patch": op("Change a Space (owners)", true, Some("SpaceInput"), ("200", "The Space"))
            },
            "/spaces/{space}/rooms": {
                "parameters": [param("space")],
                "get": op("Rooms the caller may see", false, None, ("200", "Rooms")),
                "post": op("Create a Room (members)", true, Some("RoomInput"), ("201", "The new Room"))
            },
            "/spaces/{space}/rooms/{room}": {
                "parameters": [param("space"), param("room")],
                "get": op("A Room", false, None, ("200", "The Room")),
                "patch": op("Change a Room (members)", true, Some("RoomInput"), ("200", "The Room")),
                "delete": op("Delete a Room (members)", true, None, ("204", "Deleted"))
            },
            "/spaces/{space}/members": {
                "parameters": [param("space")],
                "get": op("Members of a Space (members)", true, None, ("200", "Members"))
            },
            "/spaces/{space}/members/{handle}": {
                "parameters": [param("space"), param("handle")],
                "delete": op("Remove a member (owners) or leave (yourself)", true, None, ("204", "Removed"))
            },
            "/spaces/{space}/invitations": {
                "parameters": [param("space")],
                "get": op("Pending invitations (owners)", true, None, ("200", "Invitations")),
                "post": op("Invite by email (owners)", true, Some("InvitationInput"), ("201", "The invitation"))
            },
            "/spaces/{space}/invitations/{id}": {
                "parameters": [param("space"), {"name": "id", "in": "path", "required": true, "schema": {"type": "integer"}}],
                "delete": op("Revoke an invitation (owners)", true, None, ("204", "Revoked"))
            }
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Problem": {
                    "type": "object",
                    "properties": {
                        "type": {"type": "string"}, "title": {"type": "string"},
                        "status": {"type": "integer"}, "detail": {"type": "string"},
                        "errors": {"type": "array", "items": {"type": "object", "properties": {"field": {"type": "string"}, "message": {"type": "string"}}}}
                    }
                },
                "SpaceInput": {
                    "type": "object", "additionalProperties": false,
                    "properties": {
                        "slug": {"type": "string", "pattern": "^[a-z0-9]+(-[a-z0-9]+)*$"},
                        "name": {"type": "string", "maxLength": 80},
                        "description": {"type": "string", "maxLength": 2000},
                        "listed": {"type": "boolean"},
                        "entrance_room": {"type": "string"}
                    }
                },
                "RoomInput": {
                    "type": "object", "additionalProperties": false,
                    "properties": {
                        "slug": {"type": "string"},
                        "name": {"type": "string", "maxLength": 80},
                        "topic": {"type": "string", "maxLength": 300},
                        "access": {"type": "string", "enum": ["open", "members", "locked"]},
                        "access_code": {"type": "string", "minLength": 4, "maxLength": 64},
                        "listed": {"type": "boolean"},
                        "capacity": {"type": "integer", "minimum": 1, "maximum": 200}
                    }
                },
                "InvitationInput": {
                    "type": "object", "additionalProperties": false, "required": ["email"],
                    "properties": {"email": {"type": "string", "format": "email"}, "role": {"type": "string", "enum": ["member", "owner"]}}
                }
            }
        }
    })
}
