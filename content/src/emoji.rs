//! One emoji: what a reaction carries (docs/e2ee.md, "An emoji"; FORMAT.md, "Message content").
//! A reaction's emoji is exactly one emoji sequence of at most [`MAX_REACTION_BYTES`] UTF-8
//! bytes:
//!
//! ```text
//! emoji      = flag | keycap | pictograph *(U+200D pictograph)
//! flag       = Regional_Indicator Regional_Indicator
//! keycap     = [#*0-9] [U+FE0F] U+20E3
//! pictograph = Extended_Pictographic [U+FE0F | Emoji_Modifier] [1*(U+E0020..U+E007E) U+E007F]
//! ```
//!
//! so flags, keycaps, skin tones, tag sequences (the flag of Scotland) and ZWJ sequences
//! (families, the rainbow flag) are one emoji, and nothing else is: not text, not two emoji,
//! not an emoji with spaces, combining marks or controls around it. The Unicode properties are
//! the tables below, from the Unicode Character Database's `emoji-data.txt` (Unicode 17.0);
//! the same in every client, whatever Unicode version its platform has.

/// The longest reaction emoji, in UTF-8 bytes (a family or a flag with modifiers fits).
pub const MAX_REACTION_BYTES: usize = 64;

/// Why a string is not one emoji.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmojiProblem {
    /// Nothing at all.
    Empty,
    /// More than [`MAX_REACTION_BYTES`] UTF-8 bytes.
    TooLong,
    /// Not exactly one emoji sequence.
    NotOneEmoji,
}

impl EmojiProblem {
    /// A short reason ("empty", "too long", "not one emoji").
    pub const fn reason(self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::TooLong => "too long",
            Self::NotOneEmoji => "not one emoji",
        }
    }
}

/// Why `emoji` is no reaction, `None` when it is exactly one emoji of at most
/// [`MAX_REACTION_BYTES`] bytes.
pub fn problem(emoji: &str) -> Option<EmojiProblem> {
    if emoji.is_empty() {
        Some(EmojiProblem::Empty)
    } else if emoji.len() > MAX_REACTION_BYTES {
        Some(EmojiProblem::TooLong)
    } else if !one_emoji(emoji) {
        Some(EmojiProblem::NotOneEmoji)
    } else {
        None
    }
}

const ZWJ: char = '\u{200D}';
const VS16: char = '\u{FE0F}';
const KEYCAP: char = '\u{20E3}';
const TAG_END: char = '\u{E007F}';

fn one_emoji(s: &str) -> bool {
    let mut chars = s.chars().peekable();
    let Some(first) = chars.next() else { return false };
    if is_regional_indicator(first) {
        return chars.next().is_some_and(is_regional_indicator) && chars.next().is_none();
    }
    if matches!(first, '#' | '*' | '0'..='9') {
        chars.next_if_eq(&VS16);
        return chars.next() == Some(KEYCAP) && chars.next().is_none();
    }
    let mut start = first;
    loop {
        // One pictograph: its presentation selector or skin tone, then its tag sequence.
        if !is_extended_pictographic(start) {
            return false;
        }
        chars.next_if(|&c| c == VS16 || is_emoji_modifier(c));
        if chars.next_if(|&c| is_tag(c)).is_some() {
            while chars.next_if(|&c| is_tag(c)).is_some() {}
            if chars.next() != Some(TAG_END) {
                return false;
            }
        }
        match chars.next() {
            None => return true,
            Some(ZWJ) => match chars.next() {
                Some(next) => start = next,
                None => return false,
            },
            Some(_) => return false,
        }
    }
}

/// A tag character of a tag sequence (not its end, U+E007F).
fn is_tag(c: char) -> bool {
    ('\u{E0020}'..='\u{E007E}').contains(&c)
}

/// `Regional_Indicator` (PropList.txt): U+1F1E6..U+1F1FF.
fn is_regional_indicator(c: char) -> bool {
    ('\u{1F1E6}'..='\u{1F1FF}').contains(&c)
}

/// `Emoji_Modifier` (emoji-data.txt): the five skin tones, U+1F3FB..U+1F3FF.
fn is_emoji_modifier(c: char) -> bool {
    ('\u{1F3FB}'..='\u{1F3FF}').contains(&c)
}

fn is_extended_pictographic(c: char) -> bool {
    let c = u32::from(c);
    EXTENDED_PICTOGRAPHIC
        .binary_search_by(|&(first, last)| {
            if last < c {
                std::cmp::Ordering::Less
            } else if first > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// `Extended_Pictographic` (emoji-data.txt, Unicode 17.0, as ICU 78 carries it): inclusive code
/// point ranges, sorted, not overlapping, not adjacent. The PWA's tests check it against the JS
/// engine's own `\p{Extended_Pictographic}` on every code point (pwa/src/state/reactions.test.ts).
#[rustfmt::skip]
pub const EXTENDED_PICTOGRAPHIC: [(u32, u32); 156] = [
    (0x00A9, 0x00A9), (0x00AE, 0x00AE), (0x203C, 0x203C), (0x2049, 0x2049), (0x2122, 0x2122), (0x2139, 0x2139),
    (0x2194, 0x2199), (0x21A9, 0x21AA), (0x231A, 0x231B), (0x2328, 0x2328), (0x23CF, 0x23CF), (0x23E9, 0x23F3),
    (0x23F8, 0x23FA), (0x24C2, 0x24C2), (0x25AA, 0x25AB), (0x25B6, 0x25B6), (0x25C0, 0x25C0), (0x25FB, 0x25FE),
    (0x2600, 0x2604), (0x260E, 0x260E), (0x2611, 0x2611), (0x2614, 0x2615), (0x2618, 0x2618), (0x261D, 0x261D),
    (0x2620, 0x2620), (0x2622, 0x2623), (0x2626, 0x2626), (0x262A, 0x262A), (0x262E, 0x262F), (0x2638, 0x263A),
    (0x2640, 0x2640), (0x2642, 0x2642), (0x2648, 0x2653), (0x265F, 0x2660), (0x2663, 0x2663), (0x2665, 0x2666),
    (0x2668, 0x2668), (0x267B, 0x267B), (0x267E, 0x267F), (0x2692, 0x2697), (0x2699, 0x2699), (0x269B, 0x269C),
    (0x26A0, 0x26A1), (0x26A7, 0x26A7), (0x26AA, 0x26AB), (0x26B0, 0x26B1), (0x26BD, 0x26BE), (0x26C4, 0x26C5),
    (0x26C8, 0x26C8), (0x26CE, 0x26CF), (0x26D1, 0x26D1), (0x26D3, 0x26D4), (0x26E9, 0x26EA), (0x26F0, 0x26F5),
    (0x26F7, 0x26FA), (0x26FD, 0x26FD), (0x2702, 0x2702), (0x2705, 0x2705), (0x2708, 0x270D), (0x270F, 0x270F),
    (0x2712, 0x2712), (0x2714, 0x2714), (0x2716, 0x2716), (0x271D, 0x271D), (0x2721, 0x2721), (0x2728, 0x2728),
    (0x2733, 0x2734), (0x2744, 0x2744), (0x2747, 0x2747), (0x274C, 0x274C), (0x274E, 0x274E), (0x2753, 0x2755),
    (0x2757, 0x2757), (0x2763, 0x2764), (0x2795, 0x2797), (0x27A1, 0x27A1), (0x27B0, 0x27B0), (0x27BF, 0x27BF),
    (0x2934, 0x2935), (0x2B05, 0x2B07), (0x2B1B, 0x2B1C), (0x2B50, 0x2B50), (0x2B55, 0x2B55), (0x3030, 0x3030),
    (0x303D, 0x303D), (0x3297, 0x3297), (0x3299, 0x3299), (0x1F004, 0x1F004), (0x1F02C, 0x1F02F), (0x1F094, 0x1F09F),
    (0x1F0AF, 0x1F0B0), (0x1F0C0, 0x1F0C0), (0x1F0CF, 0x1F0D0), (0x1F0F6, 0x1F0FF), (0x1F170, 0x1F171), (0x1F17E, 0x1F17F),
    (0x1F18E, 0x1F18E), (0x1F191, 0x1F19A), (0x1F1AE, 0x1F1E5), (0x1F201, 0x1F20F), (0x1F21A, 0x1F21A), (0x1F22F, 0x1F22F),
    (0x1F232, 0x1F23A), (0x1F23C, 0x1F23F), (0x1F249, 0x1F25F), (0x1F266, 0x1F321), (0x1F324, 0x1F393), (0x1F396, 0x1F397),
    (0x1F399, 0x1F39B), (0x1F39E, 0x1F3F0), (0x1F3F3, 0x1F3F5), (0x1F3F7, 0x1F3FA), (0x1F400, 0x1F4FD), (0x1F4FF, 0x1F53D),
    (0x1F549, 0x1F54E), (0x1F550, 0x1F567), (0x1F56F, 0x1F570), (0x1F573, 0x1F57A), (0x1F587, 0x1F587), (0x1F58A, 0x1F58D),
    (0x1F590, 0x1F590), (0x1F595, 0x1F596), (0x1F5A4, 0x1F5A5), (0x1F5A8, 0x1F5A8), (0x1F5B1, 0x1F5B2), (0x1F5BC, 0x1F5BC),
    (0x1F5C2, 0x1F5C4), (0x1F5D1, 0x1F5D3), (0x1F5DC, 0x1F5DE), (0x1F5E1, 0x1F5E1), (0x1F5E3, 0x1F5E3), (0x1F5E8, 0x1F5E8),
    (0x1F5EF, 0x1F5EF), (0x1F5F3, 0x1F5F3), (0x1F5FA, 0x1F64F), (0x1F680, 0x1F6C5), (0x1F6CB, 0x1F6D2), (0x1F6D5, 0x1F6E5),
    (0x1F6E9, 0x1F6E9), (0x1F6EB, 0x1F6F0), (0x1F6F3, 0x1F6FF), (0x1F7DA, 0x1F7FF), (0x1F80C, 0x1F80F), (0x1F848, 0x1F84F),
    (0x1F85A, 0x1F85F), (0x1F888, 0x1F88F), (0x1F8AE, 0x1F8AF), (0x1F8BC, 0x1F8BF), (0x1F8C2, 0x1F8CF), (0x1F8D9, 0x1F8FF),
    (0x1F90C, 0x1F93A), (0x1F93C, 0x1F945), (0x1F947, 0x1F9FF), (0x1FA58, 0x1FA5F), (0x1FA6E, 0x1FAFF), (0x1FC00, 0x1FFFD),
];
