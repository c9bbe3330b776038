// The subset of TensorBoard's event schema that Kiln writes: field names, numbers and
// types copied from the published protos (tensorflow/tensorboard, package tensorboard,
// the same messages as tensorflow/core/{util/event,framework/summary,framework/tensor}.proto):
//   tensorboard/compat/proto/event.proto         Event (wall_time 1, step 2, file_version 3, summary 5)
//   tensorboard/compat/proto/summary.proto       Summary, Summary.Value, SummaryMetadata, DataClass
//   tensorboard/compat/proto/tensor.proto        TensorProto (dtype 1, tensor_shape 2, string_val 8)
//   tensorboard/compat/proto/tensor_shape.proto  TensorShapeProto (dim 2)
//   tensorboard/compat/proto/types.proto         DataType (DT_FLOAT 1, DT_STRING 7)
// Fields Kiln does not use are left out (a reader skips what it does not know, and a
// message without them is still valid for the full schema); the oneofs keep their names.
// The text plugin (tensorboard/plugins/text) reads a DT_STRING tensor whose metadata
// names plugin "text"; its TextPluginData (version 0) serialises to no bytes.
import protobuf from 'protobufjs';

export const TENSORBOARD_PROTO = `
syntax = "proto3";
package tensorboard;

message Event {
  double wall_time = 1;
  int64 step = 2;
  oneof what {
    string file_version = 3;
    Summary summary = 5;
  }
}

message SummaryMetadata {
  message PluginData {
    string plugin_name = 1;
    bytes content = 2;
  }
  PluginData plugin_data = 1;
  string display_name = 2;
  string summary_description = 3;
  DataClass data_class = 4;
}

enum DataClass {
  DATA_CLASS_UNKNOWN = 0;
  DATA_CLASS_SCALAR = 1;
  DATA_CLASS_TENSOR = 2;
  DATA_CLASS_BLOB_SEQUENCE = 3;
}

message Summary {
  message Value {
    string tag = 1;
    SummaryMetadata metadata = 9;
    oneof value {
      float simple_value = 2;
      TensorProto tensor = 8;
    }
  }
  repeated Value value = 1;
}

enum DataType {
  DT_INVALID = 0;
  DT_FLOAT = 1;
  DT_STRING = 7;
}

message TensorShapeProto {
  message Dim {
    int64 size = 1;
    string name = 2;
  }
  repeated Dim dim = 2;
  bool unknown_rank = 3;
}

message TensorProto {
  DataType dtype = 1;
  TensorShapeProto tensor_shape = 2;
  int32 version_number = 3;
  bytes tensor_content = 4;
  repeated float float_val = 5 [packed = true];
  repeated bytes string_val = 8;
}
`;

/** Version string of the first record of every event file (event.proto's comment: "brain.Event:2"). */
export const FILE_VERSION = 'brain.Event:2';

/** The types parsed once, with the proto's own field names (keepCase). */
export const EVENT_TYPES = (() => {
  const root = protobuf.parse(TENSORBOARD_PROTO, { keepCase: true }).root;
  return { Event: root.lookupType('tensorboard.Event'), root };
})();
