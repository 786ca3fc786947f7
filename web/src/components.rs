//! Building blocks the pages are made of: form fields, buttons, badges, cards.
//!
//! Form fields follow one pattern so every form is accessible the same way: the input's `id` is
//! its `name` (unless set otherwise), the `<label for>` points at it, help text and the inline
//! error each have an id (`{id}-help`, `{id}-error`) referenced from `aria-describedby`, and a
//! field with an error gets `aria-invalid="true"`. [`error_summary`] links to the same ids, so
//! the fields' names in [`FormErrors`] must be the inputs' names.
//!
//! Nothing here sets inline `style` attributes or inline scripts, so the instance can send a
//! strict Content-Security-Policy.

use maud::{Markup, Render, html};

use crate::view::{Access, FormErrors, RoomDoor};

// ---------------------------------------------------------------------------------------------
// Forms
// ---------------------------------------------------------------------------------------------

/// The hidden CSRF input every POST form carries.
pub fn csrf_input(token: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(token); }
}

/// A POST form with the CSRF input and, if there are errors, the error summary at its top.
///
/// `novalidate` is set because the server validates and explains problems in the page's own
/// words; browsers' native bubbles would hide the error summary.
pub fn post_form(action: &str, csrf: &str, errors: &FormErrors, body: Markup) -> Markup {
    html! {
        form.form method="post" action=(action) novalidate {
            (csrf_input(csrf))
            (error_summary(errors))
            (body)
        }
    }
}

/// A single button that POSTs to `action` (sign out, revoke, remove, leave).
///
/// `label` is markup so a short visible label can carry hidden context for screen readers,
/// e.g. "Remove" plus a visually hidden " Ada Lovelace".
pub fn post_button(action: &str, csrf: &str, label: Markup, kind: ButtonKind) -> Markup {
    html! {
        form.inline-form method="post" action=(action) {
            (csrf_input(csrf))
            button type="submit" class=(kind.class()) { (label) }
        }
    }
}

/// The list of a form's problems, linking to each field. Renders nothing when there are none.
pub fn error_summary(errors: &FormErrors) -> Markup {
    if errors.is_empty() {
        return html! {};
    }
    let title = if errors.len() == 1 {
        "There is a problem".to_owned()
    } else {
        format!("There are {} problems", errors.len())
    };
    html! {
        div.error-summary role="alert" aria-labelledby="error-summary-title" tabindex="-1" {
            h2 #error-summary-title { (icon(Icon::Alert)) (title) }
            ul {
                @for error in errors.iter() {
                    li {
                        @if error.field.is_empty() {
                            (error.message)
                        } @else {
                            a href={ "#" (error.field) } { (error.message) }
                        }
                    }
                }
            }
        }
    }
}

/// A text-like input (or a textarea), built with chained setters and rendered with
/// [`text_field`] or `Render`.
#[derive(Debug, Clone, Default)]
pub struct TextField<'a> {
    pub name: &'a str,
    /// Defaults to `name`.
    pub id: Option<&'a str>,
    pub label: &'a str,
    pub value: &'a str,
    /// The input `type`; `text` when `None`.
    pub input_type: Option<&'a str>,
    pub help: Option<&'a str>,
    pub error: Option<&'a str>,
    pub required: bool,
    /// Shows "(optional)" after the label.
    pub optional: bool,
    pub autocomplete: Option<&'a str>,
    pub inputmode: Option<&'a str>,
    pub pattern: Option<&'a str>,
    pub maxlength: Option<u32>,
    pub min: Option<&'a str>,
    pub max: Option<&'a str>,
    /// Fixed text shown before the input (e.g. `@`).
    pub prefix: Option<&'a str>,
    /// Fixed text shown after the input (e.g. `@example.org`).
    pub suffix: Option<&'a str>,
    /// A `<textarea>` instead of an `<input>`.
    pub multiline: bool,
    /// Width hint: a short input (codes, numbers).
    pub short: bool,
    pub autofocus: bool,
    pub spellcheck_off: bool,
}

impl<'a> TextField<'a> {
    pub fn new(name: &'a str, label: &'a str) -> Self {
        Self {
            name,
            label,
            ..Self::default()
        }
    }
    pub fn id(mut self, id: &'a str) -> Self {
        self.id = Some(id);
        self
    }
    pub fn value(mut self, value: &'a str) -> Self {
        self.value = value;
        self
    }
    pub fn input_type(mut self, input_type: &'a str) -> Self {
        self.input_type = Some(input_type);
        self
    }
    pub fn help(mut self, help: &'a str) -> Self {
        self.help = Some(help);
        self
    }
    /// Sets the inline error (usually `errors.get(name)`).
    pub fn error(mut self, error: Option<&'a str>) -> Self {
        self.error = error;
        self
    }
    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }
    pub fn optional(mut self) -> Self {
        self.optional = true;
        self
    }
    pub fn autocomplete(mut self, value: &'a str) -> Self {
        self.autocomplete = Some(value);
        self
    }
    pub fn inputmode(mut self, value: &'a str) -> Self {
        self.inputmode = Some(value);
        self
    }
    pub fn pattern(mut self, value: &'a str) -> Self {
        self.pattern = Some(value);
        self
    }
    pub fn maxlength(mut self, value: u32) -> Self {
        self.maxlength = Some(value);
        self
    }
    pub fn min(mut self, value: &'a str) -> Self {
        self.min = Some(value);
        self
    }
    pub fn max(mut self, value: &'a str) -> Self {
        self.max = Some(value);
        self
    }
    pub fn prefix(mut self, value: &'a str) -> Self {
        self.prefix = Some(value);
        self
    }
    pub fn suffix(mut self, value: &'a str) -> Self {
        self.suffix = Some(value);
        self
    }
    pub fn multiline(mut self) -> Self {
        self.multiline = true;
        self
    }
    pub fn short(mut self) -> Self {
        self.short = true;
        self
    }
    pub fn autofocus(mut self) -> Self {
        self.autofocus = true;
        self
    }
    pub fn spellcheck_off(mut self) -> Self {
        self.spellcheck_off = true;
        self
    }
}

impl Render for TextField<'_> {
    fn render(&self) -> Markup {
        text_field(self)
    }
}

/// `aria-describedby` for a field: its help and error ids, or `None` if it has neither.
fn described_by(id: &str, help: bool, error: bool) -> Option<String> {
    match (help, error) {
        (false, false) => None,
        (true, false) => Some(format!("{id}-help")),
        (false, true) => Some(format!("{id}-error")),
        (true, true) => Some(format!("{id}-help {id}-error")),
    }
}

fn help_and_error(id: &str, help: Option<&str>, error: Option<&str>) -> Markup {
    html! {
        @if let Some(help) = help {
            p.help id={ (id) "-help" } { (help) }
        }
        @if let Some(error) = error {
            p.field-error id={ (id) "-error" } {
                span.visually-hidden { "Error: " }
                (error)
            }
        }
    }
}

/// Renders a [`TextField`]: label, help, inline error and the input.
pub fn text_field(field: &TextField<'_>) -> Markup {
    let id = field.id.unwrap_or(field.name);
    let describedby = described_by(id, field.help.is_some(), field.error.is_some());
    let invalid = field.error.map(|_| "true");
    let spellcheck = field.spellcheck_off.then_some("false");
    let input = if field.multiline {
        html! {
            textarea id=(id) name=(field.name) rows="4"
                required[field.required]
                maxlength=[field.maxlength]
                aria-invalid=[invalid]
                aria-describedby=[describedby.as_deref()]
                autofocus[field.autofocus] { (field.value) }
        }
    } else {
        html! {
            input id=(id) name=(field.name) type=(field.input_type.unwrap_or("text"))
                value=(field.value)
                required[field.required]
                autocomplete=[field.autocomplete]
                inputmode=[field.inputmode]
                pattern=[field.pattern]
                maxlength=[field.maxlength]
                min=[field.min]
                max=[field.max]
                spellcheck=[spellcheck]
                autocapitalize=[spellcheck.map(|_| "none")]
                aria-invalid=[invalid]
                aria-describedby=[describedby.as_deref()]
                autofocus[field.autofocus];
        }
    };
    html! {
        div.field.has-error[field.error.is_some()].field-short[field.short] {
            label for=(id) {
                (field.label)
                @if field.optional { " " span.optional { "(optional)" } }
            }
            (help_and_error(id, field.help, field.error))
            @if field.prefix.is_some() || field.suffix.is_some() {
                div.input-group {
                    @if let Some(prefix) = field.prefix { span.affix.affix-before { (prefix) } }
                    (input)
                    @if let Some(suffix) = field.suffix { span.affix.affix-after { (suffix) } }
                }
            } @else {
                (input)
            }
        }
    }
}

/// One choice of a [`select`] or [`radio_group`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice<'a> {
    pub value: &'a str,
    pub label: &'a str,
    /// A line of explanation under a radio's label (ignored by `select`).
    pub hint: Option<&'a str>,
}

impl<'a> Choice<'a> {
    pub fn new(value: &'a str, label: &'a str) -> Self {
        Self {
            value,
            label,
            hint: None,
        }
    }
    pub fn hint(mut self, hint: &'a str) -> Self {
        self.hint = Some(hint);
        self
    }
}

/// A `<select>` with its label; `selected` is the value of the chosen option.
pub fn select(
    name: &str,
    label: &str,
    choices: &[Choice<'_>],
    selected: &str,
    help: Option<&str>,
    error: Option<&str>,
) -> Markup {
    let describedby = described_by(name, help.is_some(), error.is_some());
    html! {
        div.field.has-error[error.is_some()] {
            label for=(name) { (label) }
            (help_and_error(name, help, error))
            div.select-wrap {
                select id=(name) name=(name)
                    aria-invalid=[error.map(|_| "true")]
                    aria-describedby=[describedby.as_deref()] {
                    @for choice in choices {
                        option value=(choice.value) selected[choice.value == selected] {
                            (choice.label)
                        }
                    }
                }
            }
        }
    }
}

/// Radio buttons in a fieldset. The first radio's id is `name` (so the error summary's link
/// lands on it), the others' are `{name}-{value}`.
pub fn radio_group(
    name: &str,
    legend: &str,
    choices: &[Choice<'_>],
    selected: &str,
    help: Option<&str>,
    error: Option<&str>,
) -> Markup {
    let describedby = described_by(name, help.is_some(), error.is_some());
    html! {
        fieldset.field.choices.has-error[error.is_some()] aria-describedby=[describedby.as_deref()] {
            legend { (legend) }
            (help_and_error(name, help, error))
            @for (i, choice) in choices.iter().enumerate() {
                @let id = if i == 0 { name.to_owned() } else { format!("{name}-{}", choice.value) };
                @let hint_id = format!("{id}-hint");
                div.choice {
                    input type="radio" id=(id) name=(name) value=(choice.value)
                        checked[choice.value == selected]
                        aria-invalid=[error.map(|_| "true")]
                        aria-describedby=[choice.hint.map(|_| hint_id.as_str())];
                    label for=(id) {
                        span.choice-label { (choice.label) }
                        @if let Some(hint) = choice.hint {
                            span.choice-hint id=(hint_id) { (hint) }
                        }
                    }
                }
            }
        }
    }
}

/// A checkbox; when checked the browser submits `name=true`, when not the field is absent.
pub fn checkbox(
    name: &str,
    label: &str,
    checked: bool,
    hint: Option<&str>,
    error: Option<&str>,
) -> Markup {
    let describedby = described_by(name, hint.is_some(), error.is_some());
    html! {
        div.field.choices.has-error[error.is_some()] {
            @if let Some(error) = error {
                p.field-error id={ (name) "-error" } { span.visually-hidden { "Error: " } (error) }
            }
            div.choice {
                input type="checkbox" id=(name) name=(name) value="true" checked[checked]
                    aria-invalid=[error.map(|_| "true")]
                    aria-describedby=[describedby.as_deref()];
                label for=(name) {
                    span.choice-label { (label) }
                    @if let Some(hint) = hint {
                        span.choice-hint id={ (name) "-help" } { (hint) }
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Buttons, badges, icons
// ---------------------------------------------------------------------------------------------

/// How prominent a button (or a link styled as one) is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ButtonKind {
    /// The one main action of a view.
    Primary,
    Secondary,
    /// Destructive: delete, remove, revoke.
    Danger,
    /// Looks like a link; for minor actions in lists and the navigation.
    Quiet,
    /// A quiet destructive action in a list or beside other actions (remove, revoke, delete).
    QuietDanger,
}

impl ButtonKind {
    fn class(self) -> &'static str {
        match self {
            Self::Primary => "btn btn-primary",
            Self::Secondary => "btn btn-secondary",
            Self::Danger => "btn btn-danger",
            Self::Quiet => "btn btn-quiet",
            Self::QuietDanger => "btn btn-quiet btn-quiet-danger",
        }
    }
}

/// A submit button.
pub fn button(label: &str, kind: ButtonKind) -> Markup {
    html! { button type="submit" class=(kind.class()) { (label) } }
}

/// A link that looks like a button (for navigation, which must stay a link).
pub fn link_button(href: &str, label: &str, kind: ButtonKind, icon_name: Option<Icon>) -> Markup {
    html! {
        a href=(href) class=(kind.class()) {
            @if let Some(i) = icon_name { (icon(i)) }
            (label)
        }
    }
}

/// The colour of a [`badge`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Neutral,
    Accent,
    Success,
    Info,
    Warning,
}

impl Tone {
    fn class(self) -> &'static str {
        match self {
            Self::Neutral => "badge badge-neutral",
            Self::Accent => "badge badge-accent",
            Self::Success => "badge badge-success",
            Self::Info => "badge badge-info",
            Self::Warning => "badge badge-warning",
        }
    }
}

/// A small label.
pub fn badge(text: &str, tone: Tone) -> Markup {
    html! { span class=(tone.class()) { (text) } }
}

/// A badge with an icon in front.
pub fn icon_badge(text: &str, tone: Tone, icon_name: Icon) -> Markup {
    html! { span class=(tone.class()) { (icon(icon_name)) (text) } }
}

/// The badge of a Room's access mode: Open, Members or Locked.
pub fn access_badge(access: Access) -> Markup {
    let (tone, icon_name) = match access {
        Access::Open => (Tone::Success, Icon::Globe),
        Access::Members => (Tone::Info, Icon::People),
        Access::Locked => (Tone::Warning, Icon::Lock),
    };
    icon_badge(access.label(), tone, icon_name)
}

/// The small line-drawn icons of the UI. Always decorative: text beside them says the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Icon {
    Globe,
    People,
    Lock,
    EyeOff,
    Home,
    Plus,
    Person,
    Alert,
    Check,
    Info,
    Mail,
    Key,
    Door,
    Settings,
    ArrowLeft,
}

impl Icon {
    /// The icon's symbol id in [`crate::assets::ICONS_SVG`].
    pub fn id(self) -> &'static str {
        match self {
            Self::Globe => "globe",
            Self::People => "people",
            Self::Lock => "lock",
            Self::EyeOff => "eye-off",
            Self::Home => "home",
            Self::Plus => "plus",
            Self::Person => "person",
            Self::Alert => "alert",
            Self::Check => "check",
            Self::Info => "info",
            Self::Mail => "mail",
            Self::Key => "key",
            Self::Door => "door",
            Self::Settings => "settings",
            Self::ArrowLeft => "arrow-left",
        }
    }
}

/// A line icon from the sprite sheet, hidden from assistive technology. Drawing each icon by
/// reference keeps pages small: a Space page shows a few per Room.
pub fn icon(which: Icon) -> Markup {
    html! {
        svg.icon width="16" height="16" aria-hidden="true" focusable="false" {
            use href={ (crate::assets::ICONS_SVG_PATH) "?v=" (crate::assets::ICONS_SVG_VERSION) "#" (which.id()) } {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Cards and blocks
// ---------------------------------------------------------------------------------------------

/// Initials in a coloured circle; the colour is stable per name.
pub fn avatar(name: &str) -> Markup {
    let initials: String = name
        .split_whitespace()
        .filter_map(|word| word.chars().next())
        .take(2)
        .flat_map(char::to_uppercase)
        .collect();
    let initials = if initials.is_empty() {
        "?".to_owned()
    } else {
        initials
    };
    // A fixed set of classes rather than an inline style keeps CSP strict.
    let hue = name.bytes().fold(0u32, |acc, b| {
        acc.wrapping_mul(31).wrapping_add(u32::from(b))
    }) % 8;
    html! {
        span class={ "avatar avatar-" (hue) } aria-hidden="true" { (initials) }
    }
}

/// "3 of 12 inside" with a small bar; says "Full" when nobody else fits.
pub fn occupancy(inside: u32, capacity: u32) -> Markup {
    let full = capacity > 0 && inside >= capacity;
    // Bar steps of 10% keep the width in CSS classes (no inline styles).
    let step = (inside.saturating_mul(10) + capacity.saturating_sub(1))
        .checked_div(capacity)
        .unwrap_or(0)
        .min(10);
    html! {
        div.occupancy.occupancy-full[full] {
            span.occupancy-bar aria-hidden="true" { span class={ "occupancy-fill w" (step) } {} }
            span.occupancy-text {
                (icon(Icon::Person))
                @if full { "Full · " }
                (inside) " of " (capacity) " inside"
            }
        }
    }
}

/// A Room as a door: a card linking to the Room with its access, publicity and occupancy.
pub fn door_card(door: &RoomDoor) -> Markup {
    html! {
        li.door.door-entrance[door.is_entrance] {
            div.door-top {
                h3.door-name {
                    a.door-link href=(door.url) { (door.name) }
                }
                div.badges {
                    @if door.is_entrance { (icon_badge("Entrance", Tone::Accent, Icon::Home)) }
                    (access_badge(door.access))
                    @if !door.listed { (icon_badge("Unlisted", Tone::Neutral, Icon::EyeOff)) }
                }
            }
            @if door.topic.is_empty() {
                p.door-topic.muted { "No topic yet." }
            } @else {
                p.door-topic { (door.topic) }
            }
            (occupancy(door.inside, door.capacity))
        }
    }
}

/// A friendly "nothing here yet" block with an optional next step.
pub fn empty_state(icon_name: Icon, title: &str, message: &str, action: Option<Markup>) -> Markup {
    html! {
        div.empty-state {
            span.empty-icon { (icon(icon_name)) }
            h3 { (title) }
            p { (message) }
            @if let Some(action) = action { div.actions { (action) } }
        }
    }
}

/// The top of a page: breadcrumb trail, title, a lead sentence, and actions on the right.
pub fn page_header(
    crumbs: &[(&str, &str)],
    title: &str,
    lead: Option<Markup>,
    actions: Option<Markup>,
) -> Markup {
    html! {
        div.page-header {
            @if !crumbs.is_empty() {
                nav.breadcrumb aria-label="Breadcrumb" {
                    ol {
                        @for (label, href) in crumbs {
                            li { a href=(href) { (label) } }
                        }
                    }
                }
            }
            div.page-header-row {
                div.page-header-text {
                    h1 { (title) }
                    @if let Some(lead) = lead { div.lead { (lead) } }
                }
                @if let Some(actions) = actions { div.page-actions { (actions) } }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::FormErrors;

    #[test]
    fn text_field_binds_label_help_and_error() {
        let html = text_field(
            &TextField::new("email", "Email address")
                .input_type("email")
                .value("ada@example.org")
                .help("We send a code here.")
                .error(Some("Enter a valid email address.")),
        )
        .into_string();
        assert!(html.contains(r#"<label for="email">"#), "{html}");
        assert!(
            html.contains(r#"id="email" name="email" type="email""#),
            "{html}"
        );
        assert!(html.contains(r#"aria-invalid="true""#), "{html}");
        assert!(
            html.contains(r#"aria-describedby="email-help email-error""#),
            "{html}"
        );
        assert!(html.contains(r#"id="email-error""#), "{html}");
        assert!(html.contains("Enter a valid email address."), "{html}");
    }

    #[test]
    fn text_field_without_error_is_not_invalid() {
        let html = text_field(&TextField::new("name", "Name")).into_string();
        assert!(!html.contains("aria-invalid"));
        assert!(!html.contains("aria-describedby"));
    }

    #[test]
    fn error_summary_links_to_fields_and_is_empty_without_errors() {
        assert_eq!(error_summary(&FormErrors::new()).into_string(), "");
        let html = error_summary(
            &FormErrors::new()
                .with("slug", "Taken")
                .with("name", "Missing"),
        )
        .into_string();
        assert!(html.contains(r#"role="alert""#));
        assert!(html.contains("There are 2 problems"));
        let slug = html.find(r##"href="#slug""##).expect("slug link");
        let name = html.find(r##"href="#name""##).expect("name link");
        assert!(slug < name, "summary keeps the form's order");
    }

    #[test]
    fn radio_group_gives_every_radio_a_label() {
        let html = radio_group(
            "access",
            "Who may enter",
            &[
                Choice::new("open", "Open"),
                Choice::new("locked", "Locked").hint("Needs a code"),
            ],
            "locked",
            None,
            None,
        )
        .into_string();
        assert!(
            html.contains(r#"id="access" name="access" value="open""#),
            "{html}"
        );
        assert!(html.contains(r#"<label for="access">"#));
        assert!(
            html.contains(r#"id="access-locked" name="access" value="locked" checked"#),
            "{html}"
        );
        assert!(html.contains(r#"<label for="access-locked">"#));
    }

    #[test]
    fn occupancy_says_full_at_capacity() {
        assert!(occupancy(3, 12).into_string().contains("3 of 12 inside"));
        assert!(!occupancy(3, 12).into_string().contains("Full"));
        let full = occupancy(12, 12).into_string();
        assert!(full.contains("Full") && full.contains("w10"));
        // A zero capacity must not divide by zero.
        assert!(occupancy(0, 0).into_string().contains("0 of 0 inside"));
    }

    #[test]
    fn avatar_initials_are_escaped_and_bounded() {
        let html = avatar("<b>old Ada").into_string();
        assert!(html.contains("&lt;A"), "{html}");
        assert!(avatar("").into_string().contains('?'));
    }
}
