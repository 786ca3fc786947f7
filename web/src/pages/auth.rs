//! Signing up and signing in with an emailed code.

use maud::{Markup, html};

use super::HANDLE_HELP;
use crate::components::{ButtonKind, TextField, button, post_form, text_field};
use crate::layout::page;
use crate::routes;
use crate::view::{PageContext, SigninForm, SignupForm, VerifyForm};

/// `GET/POST /signup`: email, handle and display name.
pub fn signup(ctx: &PageContext, form: &SignupForm) -> Markup {
    let suffix = format!("@{}", ctx.instance_domain);
    let fields = html! {
        (next_input(&form.next))
        (text_field(&TextField::new("email", "Email address")
            .input_type("email").value(&form.email).required()
            .autocomplete("email").spellcheck_off()
            .help("We email you a code each time you sign in. No password needed.")
            .error(form.errors.get("email"))))
        (text_field(&TextField::new("handle", "Handle")
            .value(&form.handle).required()
            .autocomplete("username").spellcheck_off().maxlength(30)
            .prefix("@").suffix(&suffix)
            .help(HANDLE_HELP)
            .error(form.errors.get("handle"))))
        (text_field(&TextField::new("display_name", "Display name")
            .value(&form.display_name).required()
            .autocomplete("name").maxlength(80)
            .help("What people see in Rooms. You can change it any time.")
            .error(form.errors.get("display_name"))))
        div.form-actions { (button("Create Passport", ButtonKind::Primary)) }
    };
    let body = html! {
        div.auth {
            div.card.form-card {
                h1 { "Create your Passport" }
                p.lead {
                    "Your Passport is your account on " (ctx.instance_name) ". "
                    "With it you can join Spaces and meet people in their Rooms."
                }
                (post_form(routes::SIGNUP, &ctx.csrf, &form.errors, fields))
            }
            p.auth-switch { "Already have a Passport? " a href=(routes::SIGNIN) { "Sign in" } }
        }
    };
    page(ctx, "Sign up", body)
}

/// `GET/POST /signin`: the email to send a code to.
pub fn signin(ctx: &PageContext, form: &SigninForm) -> Markup {
    let fields = html! {
        (next_input(&form.next))
        (text_field(&TextField::new("email", "Email address")
            .input_type("email").value(&form.email).required()
            .autocomplete("email").spellcheck_off().autofocus()
            .error(form.errors.get("email"))))
        div.form-actions { (button("Email me a code", ButtonKind::Primary)) }
    };
    let body = html! {
        div.auth {
            div.card.form-card {
                h1 { "Sign in" }
                p.lead { "Enter the email address of your Passport and we'll send you a 6-digit code." }
                (post_form(routes::SIGNIN, &ctx.csrf, &form.errors, fields))
            }
            p.auth-switch { "New here? " a href=(routes::SIGNUP) { "Create your Passport" } }
        }
    };
    page(ctx, "Sign in", body)
}

/// `GET/POST /verify?email=E`: the emailed code.
pub fn verify(ctx: &PageContext, form: &VerifyForm) -> Markup {
    let fields = html! {
        input type="hidden" name="email" value=(form.email);
        (next_input(&form.next))
        (text_field(&TextField::new("code", "6-digit code")
            .value(&form.code).required().short()
            .inputmode("numeric").autocomplete("one-time-code")
            .pattern("[0-9]{6}").maxlength(6).autofocus()
            .error(form.errors.get("code"))))
        div.form-actions { (button("Continue", ButtonKind::Primary)) }
    };
    let body = html! {
        div.auth {
            div.card.form-card {
                h1 { "Check your email" }
                p.lead {
                    "We sent a code to " strong.break-anywhere { (form.email) } ". "
                    "It works once and expires soon."
                }
                (post_form(&routes::verify(&form.email), &ctx.csrf, &form.errors, fields))
            }
            p.auth-switch {
                "No email? Check your spam folder, or "
                a href=(form.resend_url) { "send a new code" } "."
            }
        }
    };
    page(ctx, "Enter your code", body)
}

/// The hidden `next` field, only when there is somewhere to return to.
fn next_input(next: &str) -> Markup {
    html! {
        @if !next.is_empty() {
            input type="hidden" name="next" value=(next);
        }
    }
}
