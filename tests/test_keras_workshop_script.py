"""The original Keras 2 workshop script, with `keras` replaced by `minidl` and nothing else changed.

Only the settings are shrunk (75x75 images, 1 epoch, 1 step, weights=None) so
that it runs in seconds; every statement is the notebook's.
"""
import warnings

import numpy as np
from workshop_data import make_tiny_workshop_data


def make_workshop_folders(root):
    make_tiny_workshop_data(root, train_per_class=3, val_per_class=3, seed=1)


def test_keras_workshop_script_runs_unchanged(tmp_path, monkeypatch, capsys):
    make_workshop_folders(tmp_path / "Open_I_abd_vs_CXRs")
    monkeypatch.chdir(tmp_path)
    import matplotlib
    matplotlib.use("Agg")

    # ---------------- the workshop notebook, keras -> minidl ----------------
    from minidl import applications
    from minidl.preprocessing.image import ImageDataGenerator
    from minidl import optimizers
    from minidl.models import Sequential, Model
    from minidl.layers import Dropout, Flatten, Dense, GlobalAveragePooling2D
    from minidl.optimizers import Adam
    from minidl.preprocessing import image
    import matplotlib.pyplot as plt

    # dimensions of our images.
    img_width, img_height = 75, 75          # the workshop: 299, 299

    train_data_dir = 'Open_I_abd_vs_CXRs/TRAIN/'
    validation_data_dir = 'Open_I_abd_vs_CXRs/VAL/'

    # number of samples used for determining the samples_per_epoch
    nb_train_samples = 6                    # the workshop: 65
    nb_validation_samples = 6               # the workshop: 10
    epochs = 1                              # the workshop: 20
    batch_size = 5

    train_datagen = ImageDataGenerator(
        rescale=1. / 255,            # normalize pixel values to [0,1]
        shear_range=0.2,
        zoom_range=0.2,
        rotation_range=20,
        width_shift_range=0.2,
        height_shift_range=0.2,
        horizontal_flip=True)

    val_datagen = ImageDataGenerator(
        rescale=1. / 255)       # normalize pixel values to [0,1]

    train_generator = train_datagen.flow_from_directory(
        train_data_dir,
        target_size=(img_height, img_width),
        batch_size=batch_size,
        class_mode='binary')

    validation_generator = train_datagen.flow_from_directory(
        validation_data_dir,
        target_size=(img_height, img_width),
        batch_size=batch_size,
        class_mode='binary')

    # create the base pre-trained model
    base_model = applications.inception_v3.InceptionV3(weights=None, include_top=False,
                                                       input_shape=(img_width, img_height, 3))

    model_top = Sequential()
    model_top.add(GlobalAveragePooling2D(input_shape=base_model.output_shape[1:], data_format=None)),
    model_top.add(Dense(256, activation='relu'))
    model_top.add(Dropout(0.5))
    model_top.add(Dense(1, activation='sigmoid'))

    model = Model(inputs=base_model.input, outputs=model_top(base_model.output))

    model.compile(optimizer=Adam(lr=0.0001, beta_1=0.9, beta_2=0.999, epsilon=1e-08, decay=0.0),
                  loss='binary_crossentropy', metrics=['accuracy'])

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)     # fit_generator's deprecation notice, as tf.keras
        history = model.fit_generator(
            train_generator,
            steps_per_epoch=nb_train_samples // batch_size,
            epochs=epochs,
            validation_data=validation_generator,
            validation_steps=nb_validation_samples // batch_size)

    print(history.history.keys())

    plt.figure()
    plt.plot(history.history['accuracy'], 'orange', label='Training accuracy')
    plt.plot(history.history['val_accuracy'], 'blue', label='Validation accuracy')
    plt.plot(history.history['loss'], 'red', label='Training loss')
    plt.plot(history.history['val_loss'], 'green', label='Validation loss')
    plt.legend()
    plt.show()

    img_path = 'Open_I_abd_vs_CXRs/TEST/abd2.png'
    img_path2 = 'Open_I_abd_vs_CXRs/TEST/chest2.png'
    img = image.load_img(img_path, target_size=(img_width, img_height))
    img2 = image.load_img(img_path2, target_size=(img_width, img_height))

    plt.imshow(img)
    plt.show()

    img = image.img_to_array(img)
    x = np.expand_dims(img, axis=0) * 1. / 255
    score = model.predict(x)
    print('Predicted:', score, 'Chest X-ray' if score < 0.5 else 'Abd X-ray')

    plt.imshow(img2)
    plt.show()

    img2 = image.img_to_array(img2)
    x = np.expand_dims(img2, axis=0) * 1. / 255
    score2 = model.predict(x)
    print('Predicted:', score2, 'Chest X-ray' if score2 < 0.5 else 'Abd X-ray')
    # ---------------- end of the workshop's code ----------------

    printed = capsys.readouterr().out
    assert "Found 6 images belonging to 2 classes." in printed
    assert train_generator.class_indices == {'openI_CXR': 0, 'openI_abd_xray': 1}
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == epochs for v in history.history.values())
    assert score.shape == (1, 1) and score.dtype == np.float32 and 0 < score[0, 0] < 1
    assert printed.count("Predicted: [[") == 2
    assert isinstance(optimizers.Adam(lr=1e-4), Adam) and optimizers.Adam(lr=1e-4).learning_rate == 1e-4
    from minidl.layers import Input
    assert Flatten()(Input(shape=(2, 3, 4))).shape == (None, 24)     # the script imports a working Flatten
    assert model.count_params() == 22_327_585
    plt.close("all")
