//! Reading JSON in the browser with the browser's own parser: `JSON.parse`, then the parsed
//! value walked into a [`Value`] for the decoders of `crate::json`. serde_json's parser
//! was a twentieth of the board's compressed WASM, and the browser's parses a frame faster.

use js_sys::{Array, Object};
use serde_json::{Map, Number, Value};
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};

#[wasm_bindgen]
extern "C" {
    /// `JSON.parse` of a JS string as it is: the text never crosses into the WASM.
    #[wasm_bindgen(js_namespace = JSON, js_name = parse, catch)]
    fn json_parse(text: &JsValue) -> Result<JsValue, JsValue>;
}

/// The JSON text in `text` (a JS string), parsed; `None` if it is not JSON.
pub fn parse(text: &JsValue) -> Option<Value> {
    if !text.is_string() {
        return None;
    }
    json_parse(text).ok().map(to_value)
}

/// A parsed JS value as a [`Value`]. Whole numbers within 2^53 are read as integers, so a
/// field the decoders read as `u64` (an offset, a time in ms) gets one.
fn to_value(js: JsValue) -> Value {
    if !js.is_object() {
        if let Some(text) = js.as_string() {
            return Value::String(text);
        }
        if let Some(n) = js.as_f64() {
            return number(n);
        }
        return js.as_bool().map_or(Value::Null, Value::Bool);
    }
    if Array::is_array(&js) {
        let items: Array = js.unchecked_into();
        let mut values = Vec::with_capacity(items.length() as usize);
        for item in items.iter() {
            values.push(to_value(item));
        }
        return Value::Array(values);
    }
    let mut fields = Map::new();
    for entry in Object::entries(js.unchecked_ref()).iter() {
        let pair: Array = entry.unchecked_into();
        if let Some(key) = pair.get(0).as_string() {
            fields.insert(key, to_value(pair.get(1)));
        }
    }
    Value::Object(fields)
}

fn number(n: f64) -> Value {
    const SAFE: f64 = 9_007_199_254_740_992.0;
    if n.fract() == 0.0 && n.abs() < SAFE {
        if n >= 0.0 {
            Value::from(n as u64)
        } else {
            Value::from(n as i64)
        }
    } else {
        Number::from_f64(n).map_or(Value::Null, Value::Number)
    }
}
